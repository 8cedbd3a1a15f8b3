//go:build unix

package fsx

import (
	"errors"
	"fmt"
	"path/filepath"
	"syscall"
)

// SyncDir fsyncs dir, so the renames and removals in it survive power loss.
// It opens dir without blocking and checks its type on the descriptor, like
// OpenFile, but follows a symlink: the store's directory may be one. It
// fsyncs through *os.File, which on macOS means F_FULLFSYNC.
func SyncDir(dir string) error {
	fd, typ, err := openNonblock(dir, syscall.O_RDONLY, 0)
	if err != nil {
		return err
	}
	if typ != syscall.S_IFDIR {
		_ = syscall.Close(fd)
		return fmt.Errorf("%s is not a directory", filepath.Base(dir))
	}
	d, err := blockingFile(fd, dir)
	if err != nil {
		return err
	}
	return errors.Join(d.Sync(), d.Close())
}

// FdSize is the size of the open file whose descriptor is fd, from
// fstat(2), without the allocation of File.Stat (and without File.Fd's
// fcntl, for a caller that keeps fd): the store asks before every write.
// ^uintptr(0), the descriptor of a test double, fails.
func FdSize(fd uintptr) (int64, error) {
	if fd == ^uintptr(0) {
		return 0, syscall.EBADF
	}
	var st syscall.Stat_t
	if err := ignoringEINTR(func() error { return syscall.Fstat(int(fd), &st) }); err != nil {
		return 0, err
	}
	return st.Size, nil
}
