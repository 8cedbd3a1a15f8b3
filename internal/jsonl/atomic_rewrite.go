package jsonl

import (
	"bufio"
	"errors"
	"os"
	"path/filepath"

	"github.com/syncbreaker/syncbreaker/internal/fsx"
)

// atomicFile is a file written whole, then put in place of its target by
// one rename, so the target holds its old content or all of the new one
// whatever moment a crash strikes. It is the one way the store rewrites a
// file (repair at open, a replay's kept records, requeued dead letters):
//
//	temp file -> write (buffered) -> flush -> fsync -> close -> rename -> fsync directory
//
// The fsync comes before the rename so the new name never points at data
// still in the page cache; the directory fsync makes the rename durable.
// The temp file sits beside the store under a name its open deletes (see
// tempPath), so a crash before the rename leaves only that. Every failure
// before the rename closes and removes the temp file; Abort does the same
// and is a no-op once Commit has run, so callers defer it.
type atomicFile struct {
	fsys fsx.FS
	tmp  string
	f    fsx.File
	w    *bufio.Writer
	size int64 // bytes written
	done bool  // Commit or Abort ran
}

// createAtomic starts a rewrite for the store at store (the temp file is
// named after the store, not the target, so that opening the store finds
// it whatever the target).
func createAtomic(fsys fsx.FS, store string) (*atomicFile, error) {
	tmp := tempPath(store)
	f, err := fsx.CreatePrivate(fsys, tmp, os.O_WRONLY|os.O_EXCL)
	if err != nil {
		return nil, err
	}
	return &atomicFile{fsys: fsys, tmp: tmp, f: f, w: bufio.NewWriterSize(f, 256<<10)}, nil
}

func (a *atomicFile) Write(p []byte) (int, error) {
	n, err := a.w.Write(p)
	a.size += int64(n)
	return n, err
}

// Size is the number of bytes written: the target's size after Commit.
func (a *atomicFile) Size() int64 { return a.size }

// Commit puts what was written in place of target. renamed reports whether
// the rename happened: from then on target holds the new content even when
// err is non-nil (the directory fsync failed, so the rename is in place
// but may not survive a power loss), and the caller must count it as done.
// Before the rename, any failure removes the temp file.
func (a *atomicFile) Commit(target string) (renamed bool, err error) {
	if a.done {
		return false, errors.New("syncbreaker: rewrite already finished")
	}
	if err := a.w.Flush(); err != nil {
		return false, errors.Join(err, a.Abort())
	}
	if err := a.f.Sync(); err != nil {
		return false, errors.Join(err, a.Abort())
	}
	a.done = true
	// Windows cannot rename an open file; the descriptor is gone even
	// when Close reports an error, but the data may not be.
	if err := a.f.Close(); err != nil {
		return false, errors.Join(err, a.fsys.Remove(a.tmp))
	}
	if err := a.fsys.Rename(a.tmp, target); err != nil {
		return false, errors.Join(err, a.fsys.Remove(a.tmp))
	}
	return true, a.fsys.SyncDir(filepath.Dir(target))
}

// Abort closes and removes the temp file, unless Commit or Abort ran.
func (a *atomicFile) Abort() error {
	if a.done {
		return nil
	}
	a.done = true
	return errors.Join(a.f.Close(), a.fsys.Remove(a.tmp))
}
