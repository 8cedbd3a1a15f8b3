//go:build darwin || dragonfly || freebsd || linux || netbsd || openbsd

package fsx

import (
	"errors"
	"io"
	"os"
	"syscall"
)

// Lock takes an exclusive flock on path, opened like OpenFile (no symlink,
// no FIFO, only a regular file), and fails with ErrLocked when another
// owner holds it; other errors are the OS's, for the caller to wrap. flock belongs to the open file
// description, so a second open in the same process conflicts too, and the
// kernel drops it when the process dies: no stale lock after kill -9.
func Lock(path string) (io.Closer, error) {
	f, err := OpenFile(path, os.O_RDWR|os.O_CREATE, FilePerm)
	if err != nil {
		return nil, err
	}
	// A lock file taken over that cannot be made private (another user's)
	// still locks: the store warns about it (see TakeOver).
	_ = f.Chmod(FilePerm)
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		_ = f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, ErrLocked
		}
		return nil, &os.PathError{Op: "flock", Path: path, Err: err}
	}
	return f, nil
}
