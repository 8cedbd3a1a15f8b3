//go:build unix

package fsx

import (
	"errors"
	"syscall"
)

// IsDiskFull reports whether err says the disk, or the user's quota on it,
// has no room for what was written: the store then reports itself full
// rather than broken.
func IsDiskFull(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}
