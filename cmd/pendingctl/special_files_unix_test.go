//go:build unix

package main

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// hangGuard bounds a command that must not block; a passing one takes
// milliseconds.
const hangGuard = 5 * time.Second

// pendingctlNoHang runs the binary like pendingctl, but fails the test if
// it has not exited within hangGuard (it is then killed).
func pendingctlNoHang(t *testing.T, args ...string) result {
	t.Helper()
	return runPendingctl(t, hangGuard, args...)
}

// A FIFO where a store file should be used to block every command in
// open(2), waiting for a writer that never came. Each must refuse it at
// once, saying what it is, with exit code 4, and leave it alone.
func TestSpecialFilesAreRefused(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		fifo string // suffix of the store path where the FIFO goes
		cmds [][]string
	}{
		{"store path", "", [][]string{{"stat"}, {"verify"}, {"cat"}, {"repair"}, {"requeue-dead"}}},
		{"dead-letter file", ".dead", [][]string{{"stat"}, {"verify"}, {"cat", "--dead"}, {"repair"}, {"requeue-dead"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			var path string
			if tc.fifo == "" {
				path = filepath.Join(dir, "sync-pending.jsonl")
			} else {
				path = newStore(t, dir, `{"cmd":"`+secret+`"}`)
			}
			fifo := path + tc.fifo
			require.NoError(t, syscall.Mkfifo(fifo, 0o600))
			for _, args := range tc.cmds {
				r := pendingctlNoHang(t, append(args, path)...)
				assert.Equal(t, exitError, r.code, "%v: %s", args, r.stderr)
				assert.True(t, strings.HasPrefix(r.stderr, "pendingctl "+args[0]+": "), r.stderr)
				assert.Contains(t, r.stderr, filepath.Base(fifo)+" is a named pipe, not a regular file", args)
				assert.NotContains(t, r.stderr, secret)
				assert.Empty(t, r.stdout, args)
			}
			fi, err := os.Lstat(fifo)
			require.NoError(t, err)
			assert.Equal(t, os.ModeNamedPipe, fi.Mode().Type(), "left as it was")
		})
	}
}
