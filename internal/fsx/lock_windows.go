//go:build windows

package fsx

import (
	"errors"
	"io"
	"os"
	"syscall"
)

const errorSharingViolation syscall.Errno = 32

// Lock opens path with no sharing at all, so any other open of it (in
// this process or another) fails until the handle is closed; Windows closes
// it when the process dies, so a killed daemon leaves no stale lock. Like
// OpenFile, it refuses what is not a regular file. It fails with ErrLocked
// when another owner holds the lock; other errors are the OS's, for the
// caller to wrap.
func Lock(path string) (io.Closer, error) {
	p, err := syscall.UTF16PtrFromString(path)
	if err != nil {
		return nil, err
	}
	h, err := syscall.CreateFile(p, syscall.GENERIC_READ|syscall.GENERIC_WRITE, 0, nil,
		syscall.OPEN_ALWAYS, syscall.FILE_ATTRIBUTE_NORMAL, 0)
	if err != nil {
		if errors.Is(err, errorSharingViolation) {
			return nil, ErrLocked
		}
		return nil, describeOpenError(path, &os.PathError{Op: "open", Path: path, Err: err})
	}
	f := os.NewFile(uintptr(h), path)
	if err := checkRegular(f); err != nil {
		return nil, err
	}
	return f, nil
}
