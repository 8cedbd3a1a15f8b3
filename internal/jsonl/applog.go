package jsonl

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync/atomic"

	"github.com/syncbreaker/syncbreaker/internal/fsx"
)

// appendLog is an append-only side file of whole lines: the dead letters
// and the quarantine. It is created on first write, so a healthy store has
// neither file.
//
// Its end never holds a partial line for the next line to be glued onto
// (a dead letter glued to junk would be quarantined, never delivered): a
// write that fails or comes up short is cut back to the end of the last
// whole line, and when that cut fails it is retried before the next write,
// which is refused until it succeeds; sync cuts back a line left
// unfinished. A line is whole once a write ends it with its newline, so a
// too-long line streamed in pieces is cut back as a whole. What a crash
// leaves at the end is repaired when the store opens (see load and
// Store.openSideFiles).
//
// The store writes it only from Open and under replaySem, one goroutine at
// a time; only size is read concurrently.
type appendLog struct {
	fsys    fsx.FS
	path    string
	f       fsx.File
	good    int64        // end of the last whole line
	end     int64        // end of what is in the file; past good only inside a line, or when a cut failed
	cut     bool         // bytes past good must go before the next write
	created bool         // created since the directory was last fsynced
	size    atomic.Int64 // the file's size, for the store's bound
}

func newAppendLog(fsys fsx.FS, path string) *appendLog {
	return &appendLog{fsys: fsys, path: path}
}

// load reads the file, if any, to learn its size and where its last whole
// line ends, and returns the length of an unfinished line after it (a write
// a crash cut short), which the caller must repair before writing. It reads
// the whole file from its start: no ledger entry says where a side file's
// last whole line ends.
func (l *appendLog) load() (partial int64, err error) {
	f, err := l.fsys.OpenFile(l.path, os.O_RDONLY, 0)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	var size, good int64
	for {
		n, err := f.Read(buf)
		if i := bytes.LastIndexByte(buf[:n], '\n'); i >= 0 {
			good = size + int64(i) + 1
		}
		size += int64(n)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return 0, err
		}
	}
	l.good, l.end, l.cut = good, size, false
	l.size.Store(size)
	return size - good, nil
}

// refresh re-reads the file's size while it is closed, since only someone
// else can have changed it then (a user who removed the quarantine after
// exporting it): the bound counts what is there.
func (l *appendLog) refresh() {
	if l.f != nil {
		return
	}
	fi, err := l.fsys.Lstat(l.path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		l.adopt(0)
	case err == nil:
		l.adopt(fi.Size())
	}
}

// adopt takes size as the file's. A file that shrank (removed or cut by
// hand, or unsynced writes dropped by a failed fsync) moves good back; one
// that grew is taken as it is unless a cut of ours is pending.
func (l *appendLog) adopt(size int64) {
	l.end = size
	if size < l.good || !l.cut {
		l.good = size
	}
	l.cut = l.end > l.good
	l.size.Store(size)
}

// open opens the file for writing, creating it if needed.
func (l *appendLog) open() error {
	if l.f != nil {
		return nil
	}
	f, err := fsx.CreatePrivate(l.fsys, l.path, os.O_WRONLY|os.O_EXCL)
	if err == nil {
		l.f, l.created = f, true
		l.adopt(0)
		return nil
	}
	if !errors.Is(err, os.ErrExist) {
		return err
	}
	if f, err = fsx.CreatePrivate(l.fsys, l.path, os.O_WRONLY); err != nil {
		return err
	}
	fi, err := f.Stat()
	if err != nil {
		return errors.Join(err, f.Close())
	}
	l.f = f
	l.adopt(fi.Size())
	return nil
}

// Write appends p at the end of the file. On failure nothing of the line
// it belongs to stays (see appendLog).
func (l *appendLog) Write(p []byte) (int, error) {
	if err := l.open(); err != nil {
		return 0, err
	}
	if l.cut {
		if err := l.cutBack(); err != nil {
			return 0, err
		}
	}
	n, err := l.f.WriteAt(p, l.end)
	if err == nil && n < len(p) {
		err = io.ErrShortWrite
	}
	l.end += int64(n)
	l.size.Store(l.end)
	if err != nil {
		return 0, errors.Join(err, l.cutBack())
	}
	if i := bytes.LastIndexByte(p, '\n'); i >= 0 {
		l.good = l.end - int64(len(p)-1-i)
	}
	return n, nil
}

// writeLine writes line and its newline in one write.
func (l *appendLog) writeLine(line []byte) error {
	buf := make([]byte, 0, len(line)+1)
	_, err := l.Write(append(append(buf, line...), '\n'))
	return err
}

// cutBack drops the bytes past the last whole line. Requires l.f.
func (l *appendLog) cutBack() error {
	if err := l.f.Truncate(l.good); err != nil {
		l.cut = true
		return fmt.Errorf("cut back %s: %w", filepath.Base(l.path), err)
	}
	l.end, l.cut = l.good, false
	l.size.Store(l.end)
	return nil
}

// mark returns the current end of the whole lines, for rollback.
func (l *appendLog) mark() int64 { return l.good }

// rollback drops the lines written since mark m and closes the file. An
// operation that failed before its commit rolls back what it wrote here:
// its sources still hold those lines.
func (l *appendLog) rollback(m int64) error {
	if l.f == nil && !l.cut && l.end <= m {
		return nil
	}
	if err := l.open(); err != nil {
		return err
	}
	l.good = min(l.good, m)
	err := l.cutBack()
	return errors.Join(err, l.closeFile())
}

// sync makes the whole lines durable and closes the file; an unfinished
// line is cut back first. If the file was created since the last directory
// fsync, the directory is fsynced too: the lines must be found after a
// power loss before their source may go.
func (l *appendLog) sync() error {
	if l.cut && l.f == nil {
		if err := l.open(); err != nil {
			return err
		}
	}
	if l.f != nil {
		var err error
		if l.end > l.good {
			err = l.cutBack()
		}
		if err == nil {
			err = l.f.Sync()
		}
		if err = errors.Join(err, l.closeFile()); err != nil {
			return err
		}
	}
	if l.created {
		if err := l.fsys.SyncDir(filepath.Dir(l.path)); err != nil {
			return err
		}
		l.created = false
	}
	return nil
}

// dropPartial cuts off the unfinished line load found, durably.
func (l *appendLog) dropPartial() error {
	l.cut = l.end > l.good
	return l.sync()
}

// closeFile closes the file without syncing it.
func (l *appendLog) closeFile() error {
	if l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}
