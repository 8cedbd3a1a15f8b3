//go:build unix

package fsx

import (
	"net"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/syncbreaker/syncbreaker/internal/fsx/fsxtest"
)

// shortTempDir is a temp dir short enough for a unix socket path (about
// 100 bytes at most), which t.TempDir with a long test name may not be.
func shortTempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "fsx")
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}

func mkfifo(t *testing.T, path string) string {
	t.Helper()
	require.NoError(t, syscall.Mkfifo(path, 0o600))
	return path
}

// releaseFIFO opens path's other end and closes it: a reader or writer
// stuck in open(2) on the FIFO then gets its partner, and EOF or EPIPE.
func releaseFIFO(path string) func() {
	return func() {
		if f, err := os.OpenFile(path, os.O_RDWR|syscall.O_NONBLOCK, 0); err == nil {
			_ = f.Close()
		}
	}
}

func TestOpenFileRefusesSpecialFiles(t *testing.T) {
	dir := shortTempDir(t)
	fifo := mkfifo(t, filepath.Join(dir, "p.jsonl.dead"))
	sock := filepath.Join(dir, "sock")
	l, err := net.Listen("unix", sock)
	require.NoError(t, err)
	defer l.Close()
	link := filepath.Join(dir, "null-link")
	require.NoError(t, os.Symlink(os.DevNull, link))

	tests := []struct {
		path string
		want string
	}{
		{fifo, "p.jsonl.dead is a named pipe, not a regular file"},
		{sock, "sock is a socket, not a regular file"},
		{link, "null-link is a symlink, not a regular file"},
		{os.DevNull, filepath.Base(os.DevNull) + " is a character device, not a regular file"},
	}
	flags := map[string]int{
		"read":   os.O_RDONLY,
		"write":  os.O_WRONLY,
		"rdwr":   os.O_RDWR,
		"append": os.O_WRONLY | os.O_APPEND | os.O_CREATE,
		"create": os.O_RDWR | os.O_CREATE,
	}
	for _, tt := range tests {
		for name, flag := range flags {
			t.Run(filepath.Base(tt.path)+"/"+name, func(t *testing.T) {
				err := fsxtest.NoHang(t, releaseFIFO(fifo), func() error {
					f, err := OpenFile(tt.path, flag, FilePerm)
					if err == nil {
						_ = f.Close()
					}
					return err
				})
				require.ErrorIs(t, err, ErrNotRegular)
				assert.EqualError(t, err, tt.want)
			})
		}
	}
	fi, err := os.Lstat(link)
	require.NoError(t, err)
	assert.NotZero(t, fi.Mode()&os.ModeSymlink, "the symlink is still there, unfollowed")
}

func TestLockRefusesFIFO(t *testing.T) {
	fifo := mkfifo(t, filepath.Join(t.TempDir(), "p.jsonl.lock"))
	err := fsxtest.NoHang(t, releaseFIFO(fifo), func() error {
		l, err := Lock(fifo)
		if err == nil {
			_ = l.Close()
		}
		return err
	})
	require.ErrorIs(t, err, ErrNotRegular)
	assert.EqualError(t, err, "p.jsonl.lock is a named pipe, not a regular file")
}

func TestSyncDir(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "dir")
	require.NoError(t, os.Mkdir(dir, DirPerm))
	link := filepath.Join(root, "link")
	require.NoError(t, os.Symlink(dir, link))
	require.NoError(t, SyncDir(dir))
	require.NoError(t, SyncDir(link), "the store's directory may be a symlink")

	fifo := mkfifo(t, filepath.Join(root, "fifo"))
	err := fsxtest.NoHang(t, releaseFIFO(fifo), func() error { return SyncDir(fifo) })
	assert.EqualError(t, err, "fifo is not a directory")
}
