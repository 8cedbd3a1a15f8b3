//go:build !windows && !darwin && !dragonfly && !freebsd && !linux && !netbsd && !openbsd

package fsx

import (
	"errors"
	"io"
)

// Lock has no OS lock to use here, and a lock file without one goes
// stale after a crash, so the store refuses to open.
func Lock(string) (io.Closer, error) {
	return nil, errors.ErrUnsupported
}

// LockFile has no OS lock to use here either.
func LockFile(File) error { return errors.ErrUnsupported }
