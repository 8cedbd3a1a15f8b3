package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// basePayloads are the records every damage case starts from: a JSON
// payload, a non-JSON one and another JSON one.
var basePayloads = []string{`{"cmd":"ls","note":"` + secret + `"}`, "plain " + secret + "\nline", `{"cmd":"pwd"}`}

// catOutput is what cat must print for payloads (none with whitespace at
// either end), one line each.
func catOutput(payloads ...string) string {
	var b strings.Builder
	for _, p := range payloads {
		if json.Valid([]byte(p)) && !strings.ContainsAny(p, "\r\n") {
			b.WriteString(p + "\n")
		} else {
			b.WriteString(`{"payload_base64":"` + base64.StdEncoding.EncodeToString([]byte(p)) + "\"}\n")
		}
	}
	return b.String()
}

// TestVerifyAndRepairEveryDamage writes each kind of damage the store
// handles, and checks that verify and cat report it (file, line, offset,
// length, reason; never content) without touching a file, that repair
// says what it did, and that the store is clean afterwards.
func TestVerifyAndRepairEveryDamage(t *testing.T) {
	t.Parallel()
	tornPart := func(g []byte) []byte { return bytes.Clone(g[:len(g)/2]) }
	flip := func(g []byte) []byte { b := bytes.Clone(g); b[30] ^= 0x01; return b }
	v2 := func(g []byte) []byte { return bytes.Replace(g, []byte(`{"_v":1,`), []byte(`{"_v":2,`), 1) }
	tooLong := append(bytes.Repeat([]byte("a"), 23<<20), '\n') // over the 16 MiB default's line limit

	tests := []struct {
		name string
		// build returns the damaged file's lines and the 0-based index of
		// the damaged one; g are the three good lines.
		build      func(g [][]byte) (lines [][]byte, bad int)
		inSegment  bool
		reason     string
		wantRepair []string
		survivors  []string
	}{
		{"torn tail", func(g [][]byte) ([][]byte, int) { return [][]byte{g[0], g[1], g[2], tornPart(g[2])}, 3 },
			false, "torn tail", []string{"cut a torn last line", "moved 1 damaged line"}, basePayloads},
		{"flipped byte", func(g [][]byte) ([][]byte, int) { return [][]byte{g[0], flip(g[1]), g[2]}, 1 },
			false, "bad checksum", []string{"moved 1 damaged line"}, []string{basePayloads[0], basePayloads[2]}},
		{"invalid json", func(g [][]byte) ([][]byte, int) {
			return [][]byte{g[0], []byte("not json " + secret + "\n"), g[1], g[2]}, 1
		}, false, "bad json", []string{"moved 1 damaged line"}, basePayloads},
		{"unknown version", func(g [][]byte) ([][]byte, int) { return [][]byte{g[0], g[1], v2(g[2])}, 2 },
			false, "unknown version", []string{"moved 1 damaged line"}, basePayloads[:2]},
		{"over-long line", func(g [][]byte) ([][]byte, int) { return [][]byte{g[0], tooLong, g[1], g[2]}, 1 },
			false, "too long", []string{"moved 1 damaged line"}, basePayloads},
		{"NUL run", func(g [][]byte) ([][]byte, int) {
			return [][]byte{g[0], append(make([]byte, 4096), '\n'), g[1], g[2]}, 1
		}, false, "bad json (only NUL bytes", []string{"moved 1 damaged line"}, basePayloads},
		{"damaged sealed segment", func(g [][]byte) ([][]byte, int) { return [][]byte{g[0], flip(g[1]), g[2]}, 1 },
			true, "bad checksum", []string{"moved 1 damaged line"}, []string{basePayloads[0], basePayloads[2]}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			path := newStore(t, dir, basePayloads...)
			lines, bad := tc.build(fileLines(t, path))
			damaged := path
			if tc.inSegment {
				damaged = path + ".seg.0000000000000001-0000000000000001"
				require.NoError(t, os.Remove(path))
			}
			require.NoError(t, os.WriteFile(damaged, bytes.Join(lines, nil), 0o600))
			var off int
			for _, l := range lines[:bad] {
				off += len(l)
			}
			wantReport := fmt.Sprintf("%s:%d: offset %d, %d bytes: %s", damaged, bad+1, off, len(lines[bad]), tc.reason)
			before := snapshot(t, dir)

			r := pendingctl(t, "verify", path)
			assert.Equal(t, exitProblems, r.code, r.stderr)
			assert.Contains(t, r.stdout, wantReport)
			assert.Contains(t, r.stdout, "1 damaged line")
			assert.NotContains(t, r.stdout+r.stderr, secret)

			r = pendingctl(t, "stat", path)
			assert.Equal(t, exitOK, r.code, r.stderr)
			assert.Contains(t, r.stdout, "damaged    1 line")
			assert.NotContains(t, r.stdout+r.stderr, secret)

			r = pendingctl(t, "cat", path)
			assert.Equal(t, exitProblems, r.code)
			assert.Equal(t, catOutput(tc.survivors...), r.stdout, "every good record, exactly")
			assert.Contains(t, r.stderr, fmt.Sprintf("%s:%d: offset %d, %d bytes: %s", damaged, bad+1, off, len(lines[bad]), strings.Fields(tc.reason)[0]))
			assert.NotContains(t, r.stderr, secret)

			assert.Equal(t, before, snapshot(t, dir), "verify, stat and cat must not change any file")

			r = pendingctl(t, "repair", path)
			require.Equal(t, exitOK, r.code, r.stderr)
			assert.Contains(t, r.stdout, "repaired "+damaged)
			for _, want := range tc.wantRepair {
				assert.Contains(t, r.stdout, want)
			}
			assert.NotContains(t, r.stdout+r.stderr, secret)
			q, err := os.ReadFile(path + ".quarantine")
			require.NoError(t, err)
			assert.Equal(t, strings.TrimSuffix(string(lines[bad]), "\n")+"\n", string(q), "the damaged line is kept byte for byte")

			r = pendingctl(t, "verify", path)
			assert.Equal(t, exitOK, r.code, r.stdout)
			assert.Contains(t, r.stdout, "0 damaged lines")
			assert.Contains(t, r.stdout, "note: 1 line already set aside in "+path+".quarantine")

			r = pendingctl(t, "cat", path)
			assert.Equal(t, exitOK, r.code, r.stderr)
			assert.Equal(t, catOutput(tc.survivors...), r.stdout)

			r = pendingctl(t, "repair", path)
			assert.Equal(t, exitOK, r.code, r.stderr)
			assert.Equal(t, "nothing to repair: every line of every pending file is a record\n", r.stdout)
		})
	}
}

func TestVerifyLegacyLinesAreRecords(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "sync-pending.jsonl")
	legacy := []string{`{"cmd":"ls","note":"` + secret + `"}`, `["a", 1]`}
	require.NoError(t, os.WriteFile(path, []byte(strings.Join(legacy, "\n")+"\n"), 0o600))
	before := snapshot(t, dir)

	r := pendingctl(t, "verify", path)
	assert.Equal(t, exitOK, r.code, r.stdout)
	assert.Contains(t, r.stdout, "checked 1 file: 2 records (2 legacy), 0 damaged lines")

	r = pendingctl(t, "cat", "--with-meta", path)
	assert.Equal(t, exitOK, r.code, r.stderr)
	assert.Equal(t, 2, strings.Count(r.stdout, `"legacy":true,"payload":`))
	assert.Contains(t, r.stdout, `"payload":["a", 1]}`)
	assert.Equal(t, before, snapshot(t, dir))

	r = pendingctl(t, "repair", path)
	assert.Equal(t, exitOK, r.code, r.stderr)
	assert.Contains(t, r.stdout, "rewrote 2 legacy lines of the original implementation as records")

	r = pendingctl(t, "cat", path)
	assert.Equal(t, exitOK, r.code, r.stderr)
	assert.Equal(t, catOutput(legacy...), r.stdout)
	r = pendingctl(t, "verify", path)
	assert.Contains(t, r.stdout, "2 records (0 legacy), 0 damaged lines")
}
