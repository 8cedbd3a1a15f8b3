package jsonl

import (
	"path/filepath"

	"github.com/syncbreaker/syncbreaker/internal/fsx"
)

// takeOver makes every existing file of the store 0600 at open: files an
// earlier version or another program created (the original daemon made
// its file 0644) hold shell history too. A chmod that fails, for a file
// another user owns say, is logged, never a failed open; the directory is
// never changed (it may be $HOME).
func (s *Store) takeOver(segs []segment) {
	names := []string{s.path, s.path + lockSuffix, s.path + ledgerSuffix, s.path + deadSuffix, s.path + quarantineSuffix}
	for _, seg := range segs {
		names = append(names, seg.path)
	}
	for _, name := range names {
		if err := fsx.TakeOver(s.fs, name); err != nil {
			s.log.Warn("syncbreaker: store file not made private", "file", filepath.Base(name), "err", err)
		}
	}
}
