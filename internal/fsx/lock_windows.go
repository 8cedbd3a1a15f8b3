//go:build windows

package fsx

import (
	"errors"
	"io"
	"os"
	"syscall"
	"unsafe"
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

var procLockFileEx = syscall.NewLazyDLL("kernel32.dll").NewProc("LockFileEx")

const (
	lockfileFailImmediately               = 0x1
	lockfileExclusiveLock                 = 0x2
	errorLockViolation      syscall.Errno = 33
)

// LockFile locks one byte of the open file f far past its end (offset
// 2^63-2), exclusively, and fails with ErrLocked when another handle (in
// this process or another) holds it. A range past the end leaves reading
// and writing the file's content alone; Windows releases it when the
// handle closes or the process dies.
func LockFile(f File) error {
	var ol syscall.Overlapped
	ol.Offset, ol.OffsetHigh = 0xfffffffe, 0x7fffffff
	r, _, err := procLockFileEx.Call(f.Fd(), lockfileExclusiveLock|lockfileFailImmediately, 0, 1, 0,
		uintptr(unsafe.Pointer(&ol)))
	if r != 0 {
		return nil
	}
	if errors.Is(err, errorLockViolation) {
		return ErrLocked
	}
	return &os.PathError{Op: "LockFileEx", Path: f.Name(), Err: err}
}
