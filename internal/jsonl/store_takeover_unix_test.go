//go:build unix

package jsonl

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// takenOverStore leaves a store at path whose every file is 0644, as the
// original daemon created its file, in a directory of mode 0755.
func takenOverStore(t *testing.T) (path string, files []string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "home")
	require.NoError(t, os.Mkdir(dir, 0o755))
	require.NoError(t, os.Chmod(dir, 0o755))
	path = filepath.Join(dir, "sync-pending.jsonl")
	s := openTestStore(t, path, Config{MaxAttempts: 1})
	appendAll(t, s, numbered(2)...)
	failAll(t, s) // a dead-letter file
	require.NoError(t, s.Close())
	s = openTestStore(t, path, Config{})
	appendAll(t, s, numbered(3)...)
	failAll(t, s) // a sealed segment, kept
	appendAll(t, s, numbered(1)...)
	require.NoError(t, s.Close())
	require.NoError(t, os.WriteFile(path+quarantineSuffix, []byte("junk\n"), 0o644))
	files, err := filepath.Glob(path + "*")
	require.NoError(t, err)
	require.Len(t, files, 6, "active, segment, dead, quarantine, ledger, lock")
	for _, f := range files {
		require.NoError(t, os.Chmod(f, 0o644))
	}
	return path, files
}

// Files the store takes over are made 0600 at open; the existing parent
// directory is left as it is.
func TestOpenMakesTakenOverFilesPrivate(t *testing.T) {
	path, files := takenOverStore(t)
	openTestStore(t, path, Config{})
	for _, f := range files {
		fi, err := os.Stat(f)
		require.NoError(t, err)
		assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm(), "%s", filepath.Base(f))
	}
	fi, err := os.Stat(filepath.Dir(path))
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o755), fi.Mode().Perm(), "the parent directory is never changed")
}

// A chmod that fails (a file owned by another user, say) is a warning,
// never a failed open.
func TestOpenWarnsWhenChmodFails(t *testing.T) {
	path, _ := takenOverStore(t)
	var logs bytes.Buffer
	ffs := &faultFS{}
	ffs.set(failOn("chmod", anyFile, syscall.EPERM, -1))
	s, err := Open(path, Config{fs: ffs, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	ffs.set(nil) // files the store creates itself must be made private
	assert.Contains(t, logs.String(), "not made private")
	assert.Equal(t, 4, len(drainAll(t, s)), "every pending record still there")
}
