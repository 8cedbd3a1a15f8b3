package jsonl

import (
	"context"
	"errors"
	"os"
	"slices"
	"time"
)

// PurgeResult says what Purge removed.
type PurgeResult struct {
	Pending      int64 // pending records
	DeadLettered bool  // the dead-letter file was removed
	Quarantined  bool  // the quarantine file was removed
	Files        int   // files removed or emptied
}

// Purge removes every record the store holds, on purpose: the pending
// records (the active file is emptied, the segments removed), the
// dead-letter and quarantine files and the ledger. It is the supported way
// to get rid of what the store holds (a secret typed into the shell, say),
// since a file deleted under a running store is restored (see
// active_identity.go). It waits for a running Replay or RequeueDead, or
// returns ctx.Err(). The records appended before it are fsynced first, so
// their Appends return nil (they were stored) and then they are gone;
// appends after it go on into the emptied file. The files' old blocks are
// freed, not overwritten: the file system or the disk may keep their
// bytes.
func (s *Store) Purge(ctx context.Context) (PurgeResult, error) {
	var res PurgeResult
	if err := ctx.Err(); err != nil {
		return res, err
	}
	select {
	case s.replaySem <- struct{}{}:
	case <-ctx.Done():
		return res, ctx.Err()
	}
	defer func() { <-s.replaySem }()
	s.syncMu.Lock()
	defer s.syncMu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return res, ErrClosed
	}
	if _, err := s.checkActiveLocked(); err != nil && !errors.Is(err, errTruncated) {
		return res, wrapErr(err, "purge")
	}
	if s.active != nil && s.syncedGen.Load() < s.writtenGen {
		if err := s.syncActiveLocked(); err != nil {
			return res, wrapErr(err, "purge")
		}
	}
	res.Pending = s.pendingRecords
	if s.active != nil {
		if err := s.active.Truncate(0); err != nil {
			return res, wrapErr(err, "purge")
		}
		if err := s.active.Sync(); err != nil {
			return res, wrapErr(err, "purge")
		}
		res.Files++
	}
	s.activeOff, s.syncedOff, s.activeFirst, s.activeRecords = 0, 0, time.Time{}, 0
	s.syncedRecords, s.entryOff, s.activeFirstID = 0, 0, ""
	s.needTruncate = false
	s.pendingRecords, s.pendingBytes, s.oldest = 0, 0, time.Time{}
	s.sealed = nil

	segs, superseded, temps, err := listStore(s.fs, s.path)
	if err != nil {
		return res, wrapErr(err, "purge")
	}
	names := slices.Concat(superseded, temps)
	for _, seg := range segs {
		names = append(names, seg.path)
	}
	var errs []error
	for _, l := range []*appendLog{s.dead, s.quar} {
		errs = append(errs, l.closeFile())
	}
	for _, name := range append(names, s.DeadPath(), s.QuarantinePath()) {
		switch err := s.fs.Remove(name); {
		case err == nil:
			res.Files++
			res.DeadLettered = res.DeadLettered || name == s.DeadPath()
			res.Quarantined = res.Quarantined || name == s.QuarantinePath()
		case !errors.Is(err, os.ErrNotExist):
			errs = append(errs, err)
		}
	}
	errs = append(errs, s.fs.SyncDir(s.dir))
	s.dead.refresh()
	s.quar.refresh()
	s.deadMoved = 0
	// An empty ledger, numbering kept: a segment name is never used twice.
	s.ledgerMu.Lock()
	s.marks = map[string]mark{}
	s.tomb = tombstones{}
	s.tombCount.Store(0)
	s.copyCount.Store(0)
	errs = append(errs, saveLedger(s.fs, s.path, s.marks, s.nextSeq.Load(), &tombstones{}, s.lineLimit.Load()))
	s.ledgerMu.Unlock()
	if err := errors.Join(errs...); err != nil {
		return res, wrapErr(err, "purge")
	}
	s.log.Warn("syncbreaker: store purged", "records", res.Pending, "files", res.Files)
	return res, nil
}
