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

// LockFile takes an exclusive flock on the open file f, and fails with
// ErrLocked when another open of it (in this process or another) holds
// one. The store holds it on its active file besides the lock file, so a
// deleted lock file never lets a second owner in. flock, like an
// open-file-description lock, belongs to this open of the file: classic
// fcntl record locks would not conflict within one process, and would
// vanish when any descriptor of the file closed. Closing f releases it.
func LockFile(f File) error {
	err := ignoringEINTR(func() error { return syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) })
	if errors.Is(err, syscall.EWOULDBLOCK) {
		return ErrLocked
	}
	if err != nil {
		return &os.PathError{Op: "flock", Path: f.Name(), Err: err}
	}
	return nil
}
