package jsonl

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A rewrite that fails anywhere before its rename leaves the target as it
// was and no temp file; one that fails after it (the directory fsync) has
// put the new content in place and says so.
func TestAtomicFileCommit(t *testing.T) {
	tests := []struct {
		name    string
		fail    func(string, string) error
		renamed bool
	}{
		{"no fault", nil, true},
		{"write fails in the flush", failOn("write", isTemp, syscall.ENOSPC, 1), false},
		{"fsync fails", failOn("sync", isTemp, syscall.EIO, 1), false},
		{"close fails", failOn("close", isTemp, syscall.EIO, 1), false},
		{"rename fails", failOn("rename", isTemp, syscall.EIO, 1), false},
		{"directory fsync fails", failOn("syncdir", anyFile, syscall.EIO, 1), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			store, target := filepath.Join(dir, "p.jsonl"), filepath.Join(dir, "p.jsonl.seg.1-1")
			require.NoError(t, os.WriteFile(target, []byte("old\n"), 0o600))
			ffs := &faultFS{}
			a, err := createAtomic(ffs, store)
			require.NoError(t, err)
			defer a.Abort()
			_, err = a.Write([]byte("new\n"))
			require.NoError(t, err)
			assert.EqualValues(t, 4, a.Size())
			ffs.set(tt.fail)
			renamed, err := a.Commit(target)
			assert.Equal(t, tt.renamed, renamed)
			if tt.fail == nil {
				require.NoError(t, err)
			} else {
				require.Error(t, err)
			}
			want := "old\n"
			if renamed {
				want = "new\n"
			}
			got, err := os.ReadFile(target)
			require.NoError(t, err)
			assert.Equal(t, want, string(got))
			require.NoError(t, a.Abort(), "a no-op after Commit")
			temps, err := filepath.Glob(filepath.Join(dir, "*"+tmpInfix+"*"))
			require.NoError(t, err)
			assert.Empty(t, temps, "the temp file is removed on every path")
		})
	}
}

func TestAtomicFileAbort(t *testing.T) {
	dir := t.TempDir()
	a, err := createAtomic(&faultFS{}, filepath.Join(dir, "p.jsonl"))
	require.NoError(t, err)
	_, err = a.Write([]byte("x\n"))
	require.NoError(t, err)
	require.NoError(t, a.Abort())
	require.NoError(t, a.Abort(), "twice")
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	assert.Empty(t, entries)
}
