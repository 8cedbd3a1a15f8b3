package jsonl

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"github.com/syncbreaker/syncbreaker/internal/fsx"
	"io"
	"os"
	"path/filepath"
	"time"
)

// RepairReport says what opening a store had to fix. Nothing in it was
// deleted: damaged lines are in the quarantine file.
type RepairReport struct {
	Files             []FileRepair // files repaired (pending files rewritten, a torn dead letter moved), in the order opened
	RemovedTemp       []string     // temp files of an interrupted rewrite (their source still exists)
	RemovedSuperseded []string     // segments a replay had replaced before a crash
}

// FileRepair is the repair of one store file.
type FileRepair struct {
	Path             string
	TornBytes        int64 // bytes of an unfinished last line, moved to quarantine
	Quarantined      int   // lines moved to quarantine, the torn tail included
	QuarantinedBytes int64
	LegacyRewritten  int // legacy lines rewritten as envelopes under their derived IDs
}

// Clean reports whether opening found nothing to repair.
func (r RepairReport) Clean() bool {
	return len(r.Files) == 0 && len(r.RemovedTemp) == 0 && len(r.RemovedSuperseded) == 0
}

// fileSummary is what a pass over a readable file learns.
type fileSummary struct {
	path    string // where the file is now: a rewrite may have renamed it
	records int64
	size    int64
	first   time.Time // EnqueuedAt of the first record counted
	firstID string    // ID of the file's first line, when it is a record
}

// repairFile makes path, a pending file of the store at store, hold only
// whole records this package can read back and rewrite. A clean file is
// only read. Otherwise the good records (legacy lines converted) are
// rewritten through an atomicFile and the bad lines appended to the
// quarantine (see triage), which is fsynced before the rename replaces
// path: in place for the active file (rewriteTo nil), under the new name
// rewriteTo gives for a segment, which supersedes it (see
// store_layout.go), so a name the ledger may hold is never reused. A
// crash before the rename leaves path as it was and a temp file that the
// next open deletes; the quarantine may then hold a line twice, which
// loses nothing. A failure before the rename takes the lines back out of
// the quarantine.
//
// Records below the byte offset settled are not pending (a replay's
// watermark, see ledger.go) and not counted, unless the file is rewritten:
// then every record in it counts again, and the caller drops the mark.
func repairFile(fsys fsx.FS, store, path string, rewriteTo func() (string, error), quarantine *appendLog, maxLine int, settled int64) (FileRepair, fileSummary, error) {
	rep := FileRepair{Path: path}
	sum := fileSummary{path: path}
	f, err := fsys.OpenFile(path, os.O_RDONLY, 0)
	if err != nil {
		return rep, sum, fmt.Errorf("syncbreaker: open %s: %w", filepath.Base(path), err)
	}
	fi, err := f.Stat()
	if err != nil {
		return rep, sum, errors.Join(fmt.Errorf("syncbreaker: %w", err), f.Close())
	}
	mtime := fi.ModTime()
	dirty := false
	tri := &triage{quar: quarantine, maxLine: maxLine, legacyOK: true}
	err = scanRecords(f, maxLine, mtime, nil, func(e *ScanEntry, _ []byte) error {
		if e.Legacy || tri.bad(e) {
			dirty = true
			return errStopScan
		}
		if e.Offset == 0 {
			sum.firstID = e.Record.ID
		}
		if e.Offset < settled {
			return nil
		}
		if sum.records == 0 {
			sum.first = e.Record.EnqueuedAt
		}
		sum.records++
		return nil
	})
	_ = f.Close()
	if err != nil && !errors.Is(err, errStopScan) {
		return rep, sum, err
	}
	if !dirty {
		sum.size = fi.Size()
		return rep, sum, nil
	}
	target := path
	if rewriteTo != nil {
		if target, err = rewriteTo(); err != nil {
			return rep, sum, wrapErr(err, "repair %s", filepath.Base(path))
		}
	}
	sum, err = rewriteFile(fsys, store, path, target, tri, mtime, &rep)
	return rep, sum, err
}

var errStopScan = errors.New("stop scan")

// rewriteFile writes the records of the file at path that tri keeps to
// target (path itself, or a name that supersedes it, in which case path
// is removed after the rename).
func rewriteFile(fsys fsx.FS, store, path, target string, tri *triage, mtime time.Time, rep *FileRepair) (fileSummary, error) {
	sum := fileSummary{path: path}
	fail := func(err error) (fileSummary, error) {
		return sum, wrapErr(err, "repair %s", filepath.Base(path))
	}
	src, err := fsys.OpenFile(path, os.O_RDONLY, 0)
	if err != nil {
		return fail(err)
	}
	srcOpen := true
	defer func() {
		if srcOpen {
			_ = src.Close()
		}
	}()
	out, err := createAtomic(fsys, store)
	if err != nil {
		return fail(err)
	}
	defer out.Abort()
	quarantine := tri.quar
	mark := quarantine.mark()
	in := &endReader{r: src}
	var enc []byte
	err = scanRecords(in, tri.maxLine, mtime, quarantine, func(e *ScanEntry, raw []byte) error {
		if bad, err := tri.take(e, raw); bad {
			if in.torn(e) {
				rep.TornBytes += e.Length
			}
			return err
		}
		if sum.records == 0 {
			sum.first, sum.firstID = e.Record.EnqueuedAt, e.Record.ID
		}
		sum.records++
		if e.Legacy {
			rep.LegacyRewritten++
			enc = appendLegacyRecord(enc[:0], e.Record) // the scan validated its payload
		} else {
			enc = append(append(enc[:0], raw...), '\n')
		}
		_, err := out.Write(enc)
		return err
	})
	rep.Quarantined = tri.lines
	if err == nil {
		err = quarantine.sync() // the bad lines must be durable before their source is replaced
	}
	renamed := false
	if err == nil {
		srcOpen = false
		_ = src.Close() // Windows cannot rename over an open file
		renamed, err = out.Commit(target)
	}
	if err != nil && !renamed {
		err = errors.Join(err, quarantine.rollback(mark))
	}
	rep.QuarantinedBytes = quarantine.mark() - mark
	sum.size = out.Size()
	if renamed {
		sum.path = target
	}
	if err != nil {
		return sum, wrapErr(err, "repair %s", filepath.Base(path))
	}
	if target != path && fsys.Remove(path) == nil {
		// Superseded by target, so it is not pending whether or not its
		// removal is durable: if it fails, or comes back after a power
		// loss, the next open removes it.
		_ = fsys.SyncDir(filepath.Dir(path))
	}
	return sum, nil
}

// openSideFiles opens the dead-letter and quarantine logs and repairs what
// a crash may have left at their ends (a write it cut short; the store cuts
// back its own failed writes), and returns the quarantine. An unfinished
// last line of the quarantine is finished with a newline, so the next line
// is not glued to it. One of the dead letters cannot be a whole record: it
// is copied to the quarantine, which is fsynced, and only then cut off.
func (s *Store) openSideFiles() (*appendLog, error) {
	s.quar = newAppendLog(s.fs, s.QuarantinePath())
	s.dead = newAppendLog(s.fs, s.DeadPath())
	partial, err := s.quar.load()
	if err == nil && partial > 0 {
		if _, err = s.quar.Write([]byte{'\n'}); err == nil {
			err = s.quar.sync()
		}
		s.log.Warn("syncbreaker: finished the torn last line of the quarantine file", "bytes", partial)
	}
	if err != nil {
		return nil, wrapErr(err, "repair %s", filepath.Base(s.quar.path))
	}
	partial, err = s.dead.load()
	if err == nil && partial > 0 {
		err = s.quarantineDeadTail(partial)
	}
	if err != nil {
		return nil, wrapErr(err, "repair %s", filepath.Base(s.dead.path))
	}
	return s.quar, nil
}

// quarantineDeadTail moves the unfinished last line of the dead letters
// (partial bytes, after their last whole line) to the quarantine.
func (s *Store) quarantineDeadTail(partial int64) error {
	f, err := s.fs.OpenFile(s.dead.path, os.O_RDONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	mark := s.quar.mark()
	if _, err := io.CopyN(io.Discard, f, s.dead.mark()); err != nil {
		return err
	}
	if _, err := io.Copy(struct{ io.Writer }{s.quar}, f); err != nil {
		return errors.Join(err, s.quar.rollback(mark))
	}
	if _, err := s.quar.Write([]byte{'\n'}); err != nil {
		return errors.Join(err, s.quar.rollback(mark))
	}
	if err := s.quar.sync(); err != nil {
		return errors.Join(err, s.quar.rollback(mark))
	}
	if err := s.dead.dropPartial(); err != nil {
		return err
	}
	rep := FileRepair{Path: s.dead.path, TornBytes: partial, Quarantined: 1, QuarantinedBytes: s.quar.mark() - mark}
	s.repair.Files = append(s.repair.Files, rep)
	s.quarantined.Add(1)
	s.log.Warn("syncbreaker: repaired store file", "file", filepath.Base(rep.Path),
		"quarantined_lines", rep.Quarantined, "quarantined_bytes", rep.QuarantinedBytes, "torn_bytes", rep.TornBytes)
	return nil
}

// tempPath names a temp file beside path that the store will recognise
// (and delete) at the next open.
func tempPath(path string) string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return path + tmpInfix + hex.EncodeToString(b[:])
}
