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
