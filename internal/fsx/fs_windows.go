//go:build windows

package fsx

import "syscall"

// SyncDir is a no-op: Windows has no directory fsync, and NTFS journals
// renames as metadata.
func SyncDir(string) error { return nil }

// FdSize is the size of the open file whose handle is fd.
func FdSize(fd uintptr) (int64, error) {
	if fd == ^uintptr(0) {
		return 0, syscall.EBADF
	}
	var info syscall.ByHandleFileInformation
	if err := syscall.GetFileInformationByHandle(syscall.Handle(fd), &info); err != nil {
		return 0, err
	}
	return int64(info.FileSizeHigh)<<32 | int64(info.FileSizeLow), nil
}
