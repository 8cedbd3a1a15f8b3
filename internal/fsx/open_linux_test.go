package fsx

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// OpenFile opens with O_NONBLOCK so a FIFO cannot block it; the regular
// file it hands out must not keep the flag.
func TestOpenFileClearsNonblock(t *testing.T) {
	path := filepath.Join(t.TempDir(), "p.jsonl")
	for _, flag := range []int{os.O_WRONLY | os.O_CREATE, os.O_RDONLY, os.O_RDWR | os.O_APPEND} {
		f, err := OpenFile(path, flag, FilePerm)
		require.NoError(t, err)
		raw, err := f.SyscallConn()
		require.NoError(t, err)
		var fl uintptr
		var errno syscall.Errno
		require.NoError(t, raw.Control(func(fd uintptr) {
			fl, _, errno = syscall.Syscall(syscall.SYS_FCNTL, fd, syscall.F_GETFL, 0)
		}))
		require.Zero(t, errno)
		assert.Zero(t, fl&syscall.O_NONBLOCK, "flag %#x", flag)
		require.NoError(t, f.Close())
	}
	l, err := Lock(path + ".lock")
	require.NoError(t, err)
	require.NoError(t, l.Close())
}
