//go:build windows

package fsx

import (
	"errors"
	"syscall"
)

// Windows reports a full disk with its own error codes, not ENOSPC.
const (
	errorHandleDiskFull    syscall.Errno = 39   // ERROR_HANDLE_DISK_FULL
	errorDiskFull          syscall.Errno = 112  // ERROR_DISK_FULL
	errorDiskQuotaExceeded syscall.Errno = 1295 // ERROR_DISK_QUOTA_EXCEEDED
)

// IsDiskFull reports whether err says the disk, or the user's quota on it,
// has no room for what was written: the store then reports itself full
// rather than broken. syscall.ENOSPC counts too, for errors made up by
// layers above the OS.
func IsDiskFull(err error) bool {
	return errors.Is(err, errorDiskFull) || errors.Is(err, errorHandleDiskFull) ||
		errors.Is(err, errorDiskQuotaExceeded) || errors.Is(err, syscall.ENOSPC)
}
