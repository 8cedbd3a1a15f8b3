package fsx

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestOpenFileRegular(t *testing.T) {
	path := filepath.Join(t.TempDir(), "p.jsonl")
	f, err := OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, FilePerm)
	require.NoError(t, err)
	_, err = f.Write([]byte("line\n"))
	require.NoError(t, err)
	require.NoError(t, f.Close())

	f, err = OpenFile(path, os.O_RDONLY, 0)
	require.NoError(t, err)
	b, err := io.ReadAll(f)
	require.NoError(t, err)
	require.NoError(t, f.Close())
	assert.Equal(t, "line\n", string(b))

	_, err = OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, FilePerm)
	assert.ErrorIs(t, err, fs.ErrExist, "O_EXCL keeps its meaning")
	assert.NotErrorIs(t, err, ErrNotRegular)
	_, err = OpenFile(path+".missing", os.O_RDONLY, 0)
	assert.ErrorIs(t, err, fs.ErrNotExist)
	assert.NotErrorIs(t, err, ErrNotRegular)
}

func TestOpenFileRefusesDirectory(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "p.jsonl")
	require.NoError(t, os.Mkdir(dir, DirPerm))
	for _, flag := range []int{os.O_RDONLY, os.O_WRONLY, os.O_RDWR, os.O_WRONLY | os.O_APPEND | os.O_CREATE} {
		_, err := OpenFile(dir, flag, FilePerm)
		require.ErrorIs(t, err, ErrNotRegular, "flag %#x", flag)
		assert.EqualError(t, err, "p.jsonl is a directory, not a regular file")
	}
	_, err := OS{}.OpenFile(dir, os.O_RDONLY, 0)
	assert.ErrorIs(t, err, ErrNotRegular)
	_, err = Lock(dir)
	assert.ErrorIs(t, err, ErrNotRegular)
}

// recordFS is the real file system, recording the operations made
// through it.
type recordFS struct {
	OS
	ops []string
}

func (r *recordFS) Stat(name string) (os.FileInfo, error) {
	r.ops = append(r.ops, "stat "+filepath.Base(name))
	return r.OS.Stat(name)
}

func (r *recordFS) Mkdir(name string, perm os.FileMode) error {
	r.ops = append(r.ops, "mkdir "+filepath.Base(name))
	return r.OS.Mkdir(name, perm)
}

func (r *recordFS) Chmod(name string, mode os.FileMode) error {
	r.ops = append(r.ops, "chmod "+filepath.Base(name))
	return r.OS.Chmod(name, mode)
}

func TestMkdirPrivateGoesThroughTheSeam(t *testing.T) {
	root := t.TempDir()
	rec := &recordFS{}
	require.NoError(t, MkdirPrivate(rec, filepath.Join(root, "a", "b")))
	assert.Equal(t, []string{
		"stat b", "stat a", "stat " + filepath.Base(root),
		"mkdir a", "chmod a", "mkdir b", "chmod b",
	}, rec.ops)
	fi, err := os.Stat(filepath.Join(root, "a", "b"))
	require.NoError(t, err)
	assert.True(t, fi.IsDir())

	rec.ops = nil
	require.NoError(t, MkdirPrivate(rec, filepath.Join(root, "a", "b")))
	assert.Equal(t, []string{"stat b"}, rec.ops, "an existing directory is left alone")

	file := filepath.Join(root, "file")
	require.NoError(t, os.WriteFile(file, nil, FilePerm))
	err = MkdirPrivate(rec, file)
	assert.EqualError(t, err, "syncbreaker: file is not a directory")

	boom := errors.New("boom")
	err = MkdirPrivate(failStat{err: boom}, filepath.Join(root, "c"))
	assert.ErrorIs(t, err, boom)
	_, err = os.Stat(filepath.Join(root, "c"))
	assert.ErrorIs(t, err, fs.ErrNotExist)
}

// failStat is the real file system whose Stat fails.
type failStat struct {
	OS
	err error
}

func (f failStat) Stat(string) (os.FileInfo, error) { return nil, f.err }
