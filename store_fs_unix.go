//go:build unix

package syncbreaker

import (
	"errors"
	"os"
	"syscall"
)

// openNoFollow keeps a symlink planted at a store path from redirecting a
// write; OpenJSONLStore also refuses a symlinked store path up front.
const openNoFollow = syscall.O_NOFOLLOW

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	return errors.Join(d.Sync(), d.Close())
}
