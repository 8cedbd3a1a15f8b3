package jsonl

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/syncbreaker/syncbreaker/internal/fsx"
)

// Files deleted, moved or truncated under a running store.
//
// A cleanup script may delete the active file P while the store appends
// to it, or move it to the trash. The store's descriptor still reaches
// the file's content, so the store checks that P is still its file (the
// descriptor's device and inode against an lstat of P: a link count would
// miss a move to the trash and a new file created at P) at every fsync
// round (after the fsync, before its appenders are released), at every
// seal, checkpoint, commit and Close, and otherwise at least every
// watchEvery. When P is gone, it copies what the descriptor holds into a
// fresh segment name of its own through an atomicFile (never onto P,
// where someone's new file may be), recreating the directory if need be,
// then starts a new active file at P (see newActiveLocked). A file that is
// still P but shorter than what the store wrote was truncated by someone:
// what it lost is reported and counted, its torn last line cut, and it is
// never extended with a hole.
//
// What remains: a deletion followed by a crash (or power loss) before the
// next check loses what the deleted file held, since nothing but the
// process knew of it; and a sealed segment deleted by someone cannot be
// restored at all: its loss, the count the ledger holds for it, is
// reported and counted (Stats.LostRecords) at the next replay.

// errTruncated is wrapped by the error of the appends a truncation of the
// active file failed (see truncatedLocked).
var errTruncated = errors.New("the active file was truncated under the store")

// errActiveShrunk is what a write returns when the active file is shorter
// than what the store wrote to it: Append handles the truncation and tries
// once more.
var errActiveShrunk = errors.New("syncbreaker: append: the active file was truncated under the store")

// watchEvery is how often the store checks its active file when nothing
// else does.
const watchEvery = time.Second

// checkActiveLocked checks that the active file is still the file at the
// store's path, and restores it if not (see above). restored reports a
// restore: the active file is then a new, empty one. A truncation is
// handled in place (see truncatedLocked). A failed stat only skips this
// check; the next one tries again. Requires s.syncMu and s.mu.
func (s *Store) checkActiveLocked() (restored bool, err error) {
	if s.active == nil {
		return false, nil
	}
	same, size, err := s.fs.SameFile(s.active, s.path)
	switch {
	case err != nil:
		s.log.Warn("syncbreaker: could not check the active file", "err", err)
		return false, nil
	case same && size >= s.activeOff:
		return false, nil
	case same:
		return false, s.truncatedLocked(size)
	}
	if err := s.restoreLocked(); err != nil {
		return false, err
	}
	return true, nil
}

// verifyActive is checkActiveLocked for callers that hold no lock (a
// checkpoint, a commit, the watch), and records a restored segment in the
// ledger.
func (s *Store) verifyActive() error {
	s.syncMu.Lock()
	defer s.syncMu.Unlock()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	_, err := s.checkActiveLocked()
	s.mu.Unlock()
	s.recordSealed()
	return err
}

// restoreLocked copies what the active file held into a fresh segment and
// starts a new active file. Every record written is then durable (the copy
// is fsynced), so the appenders waiting on an fsync round are answered.
// Requires s.syncMu and s.mu.
func (s *Store) restoreLocked() error {
	if err := fsx.MkdirPrivate(s.fs, s.dir); err != nil {
		return wrapErr(err, "restore active file")
	}
	records, size := s.activeRecords, s.activeOff
	var name string
	if size > 0 {
		n, err := s.takeSeq() // never given out again
		if err != nil {
			return wrapErr(err, "restore active file")
		}
		seg := segmentPath(s.path, n, n)
		if err := s.copyActiveLocked(seg, size); err != nil {
			return wrapErr(err, "restore active file")
		}
		name = filepath.Base(seg)
		if s.activeFirstID != "" {
			s.sealed = append(s.sealed, sealedSegment{name: name,
				m: mark{Size: size, First: s.activeFirstID, Records: records}})
		}
	}
	s.syncedGen.Store(s.writtenGen)
	s.activeOff, s.syncedOff, s.activeFirst, s.activeRecords = 0, 0, time.Time{}, 0
	s.syncedRecords, s.entryOff, s.activeFirstID = 0, 0, ""
	s.needTruncate = false
	old := s.active
	s.setActive(nil)
	_ = old.Close() // its content is in the copy
	s.restored.Add(1)
	s.log.Warn("syncbreaker: the active file was deleted or moved under the store; what it held is restored",
		"records", records, "bytes", size, "segment", name)
	f, err := s.newActiveLocked()
	if err != nil {
		return err // the next write tries again
	}
	s.setActive(f)
	return nil
}

// copyActiveLocked copies the first size bytes of the active file, read
// from its descriptor, to the segment seg. Requires s.mu.
func (s *Store) copyActiveLocked(seg string, size int64) error {
	out, err := createAtomic(s.fs, s.path)
	if err != nil {
		return err
	}
	defer out.Abort()
	if _, err := s.active.Seek(0, io.SeekStart); err != nil {
		return err
	}
	if _, err := io.CopyN(out, s.active, size); err != nil {
		return err
	}
	renamed, err := out.Commit(seg)
	if !renamed {
		return err
	}
	if err != nil {
		s.log.Warn("syncbreaker: restore: directory fsync failed; a power loss may undo the copy", "err", err)
	}
	return nil
}

// newActiveLocked starts a new active file at the store's path, which a
// seal or a restore has just vacated. A file someone created there
// meanwhile is never written over: it is taken in (see takeInLocked).
// Requires s.mu.
func (s *Store) newActiveLocked() (fsx.File, error) {
	for range 3 {
		f, err := fsx.CreatePrivate(s.fs, s.path, os.O_RDWR|os.O_EXCL)
		if err == nil {
			if err = s.fs.LockFile(f); err == nil {
				err = s.fs.SyncDir(s.dir)
			}
			if err != nil {
				_ = f.Close()
				return nil, s.createFailedLocked(err, "new active file")
			}
			return f, nil
		}
		if !errors.Is(err, os.ErrExist) {
			return nil, s.createFailedLocked(err, "new active file")
		}
		if err := s.takeInLocked(); err != nil {
			return nil, err
		}
	}
	return nil, errors.New("syncbreaker: new active file: files keep appearing at the store path")
}

// takeInLocked moves a file someone created at the store's path to a
// fresh segment name, unless another store holds it (then this one stops
// writing, see createFailedLocked). Its records are pending like any
// other; its other lines are read as legacy payloads by the next open, or
// quarantined by a replay that reaches them first: reported, never
// delivered as records and never lost. Requires s.mu.
func (s *Store) takeInLocked() error {
	f, err := s.fs.OpenFile(s.path, os.O_RDONLY, 0)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return wrapErr(err, "take in a file at the store path")
	}
	err = s.fs.LockFile(f)
	_ = f.Close() // Windows renames only a closed file
	if err != nil {
		return s.createFailedLocked(err, "take in a file at the store path")
	}
	n, err := s.takeSeq()
	if err != nil {
		return wrapErr(err, "take in a file at the store path")
	}
	seg := segmentPath(s.path, n, n)
	if err := s.fs.Rename(s.path, seg); err != nil {
		return wrapErr(err, "take in a file at the store path")
	}
	if err := s.fs.SyncDir(s.dir); err != nil {
		s.log.Warn("syncbreaker: directory fsync failed", "err", err)
	}
	fi, err := s.fs.Stat(seg)
	var records, size int64
	if err == nil {
		size = fi.Size()
		records, _, _ = scanTail(s.fs, seg, 0, s.readLimit())
	}
	s.pendingRecords += records
	s.pendingBytes += size
	s.log.Warn("syncbreaker: a file created at the store path was moved aside, not written over",
		"segment", filepath.Base(seg), "records", records, "bytes", size)
	return nil
}

// truncatedLocked handles an active file someone truncated to size: the
// records it lost are counted and logged, its torn last line is cut, and
// writing goes on after its last whole record. Under SyncAlways the
// records not yet fsynced are cut back too and their Appends fail (the
// fsync that would have covered them proves nothing now). Requires
// s.syncMu and s.mu.
func (s *Store) truncatedLocked(size int64) error {
	good, whole, err := s.wholeRecordsLocked(size)
	if err != nil {
		// Unreadable: keep nothing of it rather than guess, and report.
		s.log.Warn("syncbreaker: could not read the truncated active file", "err", err)
		good, whole = 0, 0
	}
	keepOff, keepRecs := good, whole
	acked := s.activeRecords
	var unacked uint64
	if s.cfg.Sync == SyncAlways {
		keepOff, keepRecs = min(good, s.syncedOff), min(whole, s.syncedRecords)
		acked = s.syncedRecords
		unacked = s.writtenGen - s.syncedGen.Load()
	}
	lost := max(acked-keepRecs, 0)
	s.pendingRecords -= s.activeRecords - keepRecs
	s.pendingBytes -= s.activeOff - keepOff
	s.activeRecords, s.activeOff = keepRecs, keepOff
	s.syncedOff, s.syncedRecords = min(s.syncedOff, keepOff), min(s.syncedRecords, keepRecs)
	s.entryOff = min(s.entryOff, keepOff)
	if s.activeOff == 0 {
		s.activeFirst, s.activeFirstID = time.Time{}, ""
	}
	// Never past size: a truncate here only cuts.
	if err := s.active.Truncate(keepOff); err != nil {
		s.needTruncate = true
	}
	s.truncations.Add(1)
	s.lostRecords.Add(lost)
	s.log.Error("syncbreaker: the active file was truncated under the store; records lost",
		"records", lost, "bytes_left", size)
	if unacked == 0 {
		return nil
	}
	s.appended.Add(-int64(unacked))
	synced := s.syncedGen.Load()
	ep := s.epoch
	ep.ended, ep.durable = true, synced
	ep.err = fmt.Errorf("syncbreaker: %w: %d records cut back, not stored", errTruncated, unacked)
	s.epoch = new(syncEpoch)
	s.writtenGen = synced
	return ep.err
}

// wholeRecordsLocked reads the first size bytes of the active file from
// its descriptor and returns where its last whole record ends and how
// many whole records come before. Requires s.mu.
func (s *Store) wholeRecordsLocked(size int64) (good, records int64, err error) {
	if _, err := s.active.Seek(0, io.SeekStart); err != nil {
		return 0, 0, err
	}
	err = scanRecords(io.LimitReader(s.active, size), s.readLimit(), time.Time{}, nil,
		func(e *ScanEntry, _ []byte) error {
			if e.Problem != ProblemNone {
				return errStopScan
			}
			good = e.Offset + e.Length
			records++
			return nil
		})
	if err != nil && !errors.Is(err, errStopScan) {
		return 0, 0, err
	}
	return good, records, nil
}

// armWatch schedules the next check of the active file (see watchEvery).
// Requires s.mu.
func (s *Store) armWatch() {
	if s.closed {
		return
	}
	s.watchWG.Add(1)
	s.watch = time.AfterFunc(watchEvery, func() {
		defer s.watchWG.Done()
		if err := s.verifyActive(); err != nil {
			s.log.Warn("syncbreaker: restoring the active file failed; the next check retries", "err", err)
		}
		s.mu.Lock()
		s.armWatch()
		s.mu.Unlock()
	})
}

// stopWatch cancels the next check and waits for a running one. Call it
// after closed is set.
func (s *Store) stopWatch() {
	s.mu.Lock()
	w := s.watch
	s.mu.Unlock()
	if w != nil && w.Stop() {
		s.watchWG.Done()
	}
	s.watchWG.Wait()
}

// noticeLostSegments reports the sealed segments the ledger counts that
// are gone from the directory (deleted by someone: the store never
// removes one it has not drained), and drops their entries. Their records
// cannot be restored; the exact count is logged and counted. Requires
// s.syncMu, not s.mu; present holds the base names of the store's files.
func (s *Store) noticeLostSegments(present map[string]bool) {
	active := filepath.Base(s.path)
	var gone []string
	var lost, bytes int64
	s.ledgerMu.Lock()
	for name, m := range s.marks {
		if name == active || present[name] {
			continue
		}
		gone = append(gone, name)
		lost += max(m.Records-m.Lines, 0)
		bytes += m.Size
	}
	s.ledgerMu.Unlock()
	if len(gone) == 0 {
		return
	}
	s.lostRecords.Add(lost)
	s.mu.Lock()
	s.pendingRecords = max(s.pendingRecords-lost, s.activeRecords)
	s.pendingBytes = max(s.pendingBytes-bytes, s.activeOff)
	s.mu.Unlock()
	for _, name := range gone {
		s.log.Error("syncbreaker: a sealed segment was deleted under the store; its records are lost", "segment", name)
	}
	s.log.Error("syncbreaker: records lost with deleted segments", "records", lost, "segments", len(gone))
	if err := s.updateLedger(true, func(m map[string]mark) {
		for _, name := range gone {
			delete(m, name)
		}
	}); err != nil {
		s.log.Warn("syncbreaker: ledger not updated", "err", err)
	}
}
