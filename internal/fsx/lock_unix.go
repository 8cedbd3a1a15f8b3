//go:build darwin || dragonfly || freebsd || linux || netbsd || openbsd

package fsx

import (
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
)

// Lock takes an exclusive flock on path. flock belongs to the open file
// description, so a second open in the same process conflicts too, and the
// kernel drops it when the process dies: no stale lock after kill -9.
func Lock(path string) (io.Closer, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW, FilePerm)
	if err != nil {
		return nil, fmt.Errorf("syncbreaker: lock: %w", err)
	}
	if err := f.Chmod(FilePerm); err != nil {
		return nil, errors.Join(fmt.Errorf("syncbreaker: lock: %w", err), f.Close())
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		_ = f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, ErrLocked
		}
		return nil, fmt.Errorf("syncbreaker: lock: %w", err)
	}
	return f, nil
}
