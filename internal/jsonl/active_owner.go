package jsonl

import (
	"errors"
	"fmt"

	"github.com/syncbreaker/syncbreaker/internal/fsx"
)

// errOwnerLost is what Append returns once the store has found another
// owner of its active file.
var errOwnerLost = fmt.Errorf("%w: it took the active file; this store stopped writing", fsx.ErrLocked)

// createFailedLocked wraps the failure of a new active file's creation
// with what. When the file is locked by another owner (a second store let
// in by a deleted lock file, say) the store stops writing for good:
// writing on would interleave two owners' records. Requires s.mu.
func (s *Store) createFailedLocked(err error, what string) error {
	if errors.Is(err, fsx.ErrLocked) {
		if !s.ownerLost {
			s.ownerLost = true
			s.log.Error("syncbreaker: another owner holds the active file: this store stopped writing")
		}
		return errOwnerLost
	}
	return wrapErr(err, "%s", what)
}
