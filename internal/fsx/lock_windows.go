//go:build windows

package fsx

import (
	"errors"
	"fmt"
	"io"
	"syscall"
)

const errorSharingViolation syscall.Errno = 32

// Lock opens path with no sharing at all, so any other open of it (in
// this process or another) fails until the handle is closed; Windows closes
// it when the process dies, so a killed daemon leaves no stale lock.
func Lock(path string) (io.Closer, error) {
	p, err := syscall.UTF16PtrFromString(path)
	if err != nil {
		return nil, fmt.Errorf("syncbreaker: lock: %w", err)
	}
	h, err := syscall.CreateFile(p, syscall.GENERIC_READ|syscall.GENERIC_WRITE, 0, nil,
		syscall.OPEN_ALWAYS, syscall.FILE_ATTRIBUTE_NORMAL, 0)
	if err != nil {
		if errors.Is(err, errorSharingViolation) {
			return nil, ErrLocked
		}
		return nil, fmt.Errorf("syncbreaker: lock: %w", err)
	}
	return handleCloser(h), nil
}

type handleCloser syscall.Handle

func (h handleCloser) Close() error { return syscall.CloseHandle(syscall.Handle(h)) }
