//go:build !windows && !darwin && !dragonfly && !freebsd && !linux && !netbsd && !openbsd

package syncbreaker

import (
	"errors"
	"fmt"
	"io"
)

// lockPath has no OS lock to use here, and a lock file without one goes
// stale after a crash, so the store refuses to open.
func lockPath(string) (io.Closer, error) {
	return nil, fmt.Errorf("syncbreaker: lock: %w", errors.ErrUnsupported)
}
