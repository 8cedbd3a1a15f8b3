//go:build unix

package jsonl

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/syncbreaker/syncbreaker/internal/fsx"
)

func TestStorePermissionsWhateverTheUmask(t *testing.T) {
	for _, mask := range []int{0o022, 0, 0o077} {
		t.Run(fmt.Sprintf("umask %04o", mask), func(t *testing.T) {
			old := syscall.Umask(mask)
			defer syscall.Umask(old)
			root := t.TempDir()
			before, err := os.Stat(root)
			require.NoError(t, err)
			path := filepath.Join(root, "a", "b", "sync-pending.jsonl")
			s := openTestStore(t, path, Config{MaxAttempts: 1})
			after, err := os.Stat(root)
			require.NoError(t, err)
			assert.Equal(t, before.Mode(), after.Mode(), "an existing parent is left alone")
			appendAll(t, s, []byte(`"x"`), []byte(`"y"`))
			failAll(t, s) // makes a dead-letter file
			appendAll(t, s, []byte(`"z"`))
			_, err = s.Replay(t.Context(), func(context.Context, Record) error { return nil })
			require.NoError(t, err)
			for _, dir := range []string{filepath.Join(root, "a"), filepath.Join(root, "a", "b")} {
				fi, err := os.Stat(dir)
				require.NoError(t, err)
				assert.Equal(t, os.FileMode(0o700), fi.Mode().Perm(), "dir %s", filepath.Base(dir))
			}
			for _, f := range []string{path, path + ".lock", path + ".dead"} {
				fi, err := os.Stat(f)
				require.NoError(t, err, f)
				assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm(), filepath.Base(f))
			}
		})
	}
}

func TestStoreRefusesSymlink(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "elsewhere")
	require.NoError(t, os.WriteFile(target, nil, 0o600))
	path := filepath.Join(dir, "p.jsonl")
	require.NoError(t, os.Symlink(target, path))
	_, err := Open(path, Config{})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "symlink")
}

func TestStoreLockSameProcess(t *testing.T) {
	path := storePath(t)
	s := openTestStore(t, path, Config{})
	_, err := Open(path, Config{})
	require.ErrorIs(t, err, fsx.ErrLocked)
	_, err = Open(filepath.Join(filepath.Dir(path), ".", filepath.Base(path)), Config{})
	require.ErrorIs(t, err, fsx.ErrLocked, "same file by another spelling")
	require.NoError(t, s.Close())
	s2, err := Open(path, Config{})
	require.NoError(t, err, "released by Close")
	require.NoError(t, s2.Close())
}
