package main

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/syncbreaker/syncbreaker"
)

func TestLockedStore(t *testing.T) {
	t.Parallel()
	path := buildMixedStore(t)
	// The test process plays the daemon: the lock belongs to this open
	// file, so the child pendingctl finds the store held.
	held, err := syncbreaker.OpenJSONLStore(path, syncbreaker.StoreConfig{})
	require.NoError(t, err)
	defer closeStore(t, held)
	before := snapshot(t, filepath.Dir(path))

	for _, cmd := range []string{"repair", "requeue-dead"} {
		r := pendingctl(t, cmd, path)
		assert.Equal(t, exitLocked, r.code, cmd)
		assert.Equal(t, "pendingctl "+cmd+": the store is held by another process — is the daemon running? stop it first\n", r.stderr)
		assert.Empty(t, r.stdout)
	}
	for _, args := range [][]string{{"stat", path}, {"verify", path}, {"cat", path}, {"cat", "--dead", path}} {
		r := pendingctl(t, args...)
		assert.Equal(t, exitOK, r.code, "%v: read-only commands work while the daemon runs: %s", args, r.stderr)
	}
	assert.Equal(t, before, snapshot(t, filepath.Dir(path)))
}

// TestNotAStore: a wrong path gets a clear error from every command, and
// repair and requeue-dead neither create a store nor quarantine a foreign
// file's lines.
func TestNotAStore(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewChaCha8([32]byte{1}))
	random := make([]byte, 8<<10)
	for i := range random {
		random[i] = byte(rng.Uint32())
	}
	tests := []struct {
		name    string
		content []byte // nil: no file at all
		dir     bool
		want    string
	}{
		{name: "missing file", want: "no store at "},
		{name: "directory", dir: true, want: "is a directory; give the store file"},
		{name: "text file", content: []byte("# hosts\n127.0.0.1 localhost\n::1 localhost " + secret + "\n"),
			want: "not a syncbreaker store: no line of "},
		{name: "binary file", content: random, want: "not a syncbreaker store: no line of "},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			path := filepath.Join(dir, "sync-pending.jsonl")
			switch {
			case tc.dir:
				require.NoError(t, os.Mkdir(path, 0o700))
			case tc.content != nil:
				require.NoError(t, os.WriteFile(path, tc.content, 0o600))
			}
			before := snapshot(t, dir)
			for _, cmd := range []string{"stat", "verify", "cat", "repair", "requeue-dead"} {
				r := pendingctl(t, cmd, path)
				assert.Equal(t, exitError, r.code, cmd)
				assert.True(t, strings.HasPrefix(r.stderr, "pendingctl "+cmd+": "), r.stderr)
				assert.Contains(t, r.stderr, tc.want, cmd)
				assert.NotContains(t, r.stderr, secret)
				assert.Empty(t, r.stdout, cmd)
			}
			assert.Equal(t, before, snapshot(t, dir), "nothing created or changed")
		})
	}
}

// TestNULFileIsADamagedStore: a file of NUL bytes is what a filesystem
// may leave of a store after power loss; it is damage, not a foreign
// file, so repair may fix it.
func TestNULFileIsADamagedStore(t *testing.T) {
	t.Parallel()
	for _, content := range [][]byte{make([]byte, 4096), append(make([]byte, 100), '\n')} {
		path := filepath.Join(t.TempDir(), "sync-pending.jsonl")
		require.NoError(t, os.WriteFile(path, content, 0o600))
		r := pendingctl(t, "verify", path)
		assert.Equal(t, exitProblems, r.code, r.stderr)
		assert.Contains(t, r.stdout, path+":1: offset 0, ")
		r = pendingctl(t, "repair", path)
		assert.Equal(t, exitOK, r.code, r.stderr)
		assert.Contains(t, r.stdout, "moved 1 damaged line")
		r = pendingctl(t, "verify", path)
		assert.Equal(t, exitOK, r.code, r.stdout)
	}
}
