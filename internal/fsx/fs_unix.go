//go:build unix

package fsx

import (
	"errors"
	"os"
	"syscall"
)

// OpenNoFollow keeps a symlink planted at a store path from redirecting a
// write; OpenJSONLStore also refuses a symlinked store path up front.
const OpenNoFollow = syscall.O_NOFOLLOW

func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	return errors.Join(d.Sync(), d.Close())
}
