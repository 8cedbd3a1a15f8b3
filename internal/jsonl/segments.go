package jsonl

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"github.com/syncbreaker/syncbreaker/internal/fsx"
	"os"
	"path/filepath"
	"time"
)

// How a Replay keeps every record through a crash at any point.
//
// 1. Seal: under syncMu and mu the active file P is fsynced (unless it has
// nothing unsynced, or the policy is SyncNever), closed and renamed to the segment P.seg.<n>-<n>; the directory is fsynced and a
// fresh P created. Appends wait only for this, then go on into P for the
// whole replay. A crash before the rename leaves P as it was; after it,
// opening finds the segment and creates P.
//
// 2. Drain: segments are read oldest first. Records fn accepts are dropped,
// failed ones re-encoded with Attempts+1 into a temp file P.tmp-*, poison
// ones appended to P.dead, unreadable lines to P.quarantine. Once ctx ends,
// the rest of the current segment is copied unchanged and later segments
// are not touched. A crash here leaves every source segment intact and a
// temp file that opening deletes: the records are simply replayed again.
//
// 3. Commit: the dead-letter, quarantine and temp files are fsynced, the
// temp file renamed to P.seg.<lo>-<hi> (the range of the drained segments,
// replacing the newest of them atomically) and the directory fsynced; then
// the other drained segments are deleted. From the rename on, the new
// segment supersedes them, so a crash before the deletes is finished by
// the next open. Since every segment sealed later has a higher number, the
// kept records still come before anything appended during the replay.

// sealLocked turns a non-empty active file into the newest segment.
// Requires s.syncMu (not s.mu).
func (s *Store) sealLocked() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if s.active == nil || s.activeOff == 0 {
		return nil
	}
	cut, err := s.cutBackLocked()
	if err != nil {
		return fmt.Errorf("syncbreaker: seal: %w", err)
	}
	// Skip the fsync when it has nothing to do (SyncAlways has fsynced
	// every acknowledged record) or nothing to promise (SyncNever leaves
	// flushing to the OS, segments included): after a burst of appends it
	// would write back the whole file and dominate the replay.
	if cut || s.cfg.Sync != SyncNever && s.syncedGen.Load() < s.writtenGen {
		if err := s.active.Sync(); err != nil {
			return fmt.Errorf("syncbreaker: seal: fsync: %w", err)
		}
		s.syncedGen.Store(s.writtenGen)
	}
	// Windows cannot rename an open file. The descriptor is gone even when
	// Close reports an error, so forget it either way: the next append
	// reopens the active file and cuts it back to activeOff.
	err = s.active.Close()
	s.active = nil
	if err != nil {
		return fmt.Errorf("syncbreaker: seal: %w", err)
	}
	seg := segmentPath(s.path, s.nextSeq, s.nextSeq)
	if err := s.fs.Rename(s.path, seg); err != nil {
		return fmt.Errorf("syncbreaker: seal: %w", err) // the next append reopens P
	}
	s.nextSeq++
	s.activeOff, s.activeFirst = 0, time.Time{}
	if err := s.fs.SyncDir(s.dir); err != nil {
		return fmt.Errorf("syncbreaker: seal: %w", err)
	}
	f, err := fsx.CreatePrivate(s.fs, s.path, os.O_WRONLY|os.O_TRUNC)
	if err != nil {
		return fmt.Errorf("syncbreaker: seal: new active file: %w", err)
	}
	s.active = f
	if err := s.fs.SyncDir(s.dir); err != nil {
		return fmt.Errorf("syncbreaker: seal: %w", err)
	}
	return nil
}

// Replay calls fn for every pending record, oldest first, as
// PendingStore.Replay documents; rec.Payload shares a buffer that the
// next record overwrites. Records appended while it runs are left
// for the next Replay. Only one Replay runs at a time; another waits (or
// returns ctx.Err()). The returned error is ctx.Err() when ctx ended, or an
// I/O error, in which case nothing was removed.
func (s *Store) Replay(ctx context.Context, fn func(context.Context, Record) error) (ReplayResult, error) {
	var res ReplayResult
	select {
	case s.replaySem <- struct{}{}:
	case <-ctx.Done():
		return res, ctx.Err()
	}
	defer func() { <-s.replaySem }()

	s.syncMu.Lock()
	err := s.sealLocked()
	var segs []segment
	if err == nil {
		segs, _, _, err = listStore(s.path)
	}
	s.syncMu.Unlock()
	if err != nil {
		return res, err
	}
	d := &drain{s: s, fn: fn, res: &res}
	var drained []segment
	for _, seg := range segs {
		if ctx.Err() != nil {
			break
		}
		drained = append(drained, seg)
		if err := d.segment(ctx, seg); err != nil {
			return res, errors.Join(err, d.abort())
		}
	}
	if err := d.commit(drained); err != nil {
		return res, err
	}
	s.mu.Lock()
	res.Remaining = int(s.pendingRecords)
	s.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return res, err
	}
	return res, nil
}

// drain is the state of one Replay's pass over the segments.
type drain struct {
	s     *Store
	fn    func(context.Context, Record) error
	res   *ReplayResult
	out   fsx.File
	outW  *bufio.Writer
	tmp   string
	enc   []byte
	dead  *appendLog
	quar  *appendLog
	read  int64 // records and bad lines read from drained segments
	kept  int64
	first time.Time // EnqueuedAt of the first kept record
	// settled counts records removed or dead-lettered, published to the
	// store's counters only at commit.
	republished, deadLettered, quarantined int64
}

func (d *drain) keep(line []byte, at time.Time) error {
	if d.out == nil {
		d.tmp = tempPath(d.s.path)
		f, err := fsx.CreatePrivate(d.s.fs, d.tmp, os.O_WRONLY|os.O_EXCL)
		if err != nil {
			return fmt.Errorf("syncbreaker: replay: %w", err)
		}
		d.out, d.outW = f, bufio.NewWriterSize(f, 256<<10)
	}
	if d.kept == 0 {
		d.first = at
	}
	d.kept++
	_, err := d.outW.Write(line)
	return err
}

func (d *drain) segment(ctx context.Context, seg segment) error {
	s := d.s
	f, err := s.fs.OpenFile(seg.path, os.O_RDONLY, 0)
	if err != nil {
		return fmt.Errorf("syncbreaker: replay: %w", err)
	}
	defer f.Close()
	if d.quar == nil {
		d.quar = &appendLog{fsys: s.fs, path: s.path + quarantineSuffix}
		d.dead = &appendLog{fsys: s.fs, path: s.path + deadSuffix}
	}
	return scanRecords(f, maxLineSize(s.cfg.MaxPayloadBytes), time.Time{}, d.quar, func(e *ScanEntry, raw []byte) error {
		d.read++
		if e.Problem != ProblemNone || e.Legacy {
			// Segments are written whole and fsynced before they get
			// their name, and checked at open; this is damage since.
			d.quarantined++
			d.res.Quarantined++
			s.log.Warn("syncbreaker: quarantined damaged line", "file", filepath.Base(seg.path),
				"line", e.Line, "offset", e.Offset, "problem", e.Problem.String())
			if e.Problem == ProblemTooLong {
				return nil
			}
			return d.quar.writeLine(raw)
		}
		rec := e.Record
		// The callback owns what it gets: it may keep the payload or hand
		// it to an asynchronous publisher, while the scan reuses its
		// buffers for the next line.
		rec.Payload = bytes.Clone(rec.Payload)
		var ferr error
		if ctx.Err() == nil {
			if ferr = d.fn(ctx, rec); ferr == nil {
				d.republished++
				d.res.Republished++
				return nil
			}
		}
		switch outcomeOf(ctx, ferr) {
		case outcomeDeadLetter:
			rec.Attempts++
			d.enc = appendRecord(d.enc[:0], rec)
			return d.deadLetter(rec, "permanent")
		case outcomeNotAttempted:
			d.res.Skipped++
			return d.keep(append(append(d.enc[:0], raw...), '\n'), rec.EnqueuedAt)
		}
		rec.Attempts++
		d.enc = appendRecord(d.enc[:0], rec)
		if max := s.cfg.MaxAttempts; max > 0 && rec.Attempts >= max {
			return d.deadLetter(rec, "max attempts")
		}
		d.res.Failed++
		return d.keep(d.enc, rec.EnqueuedAt)
	})
}

// deadLetter appends the record just encoded into d.enc to the dead-letter
// file.
func (d *drain) deadLetter(rec Record, why string) error {
	d.deadLettered++
	d.res.DeadLettered++
	d.s.log.Warn("syncbreaker: dead-lettered record", "id", rec.ID, "attempts", rec.Attempts, "reason", why)
	_, err := d.dead.Write(d.enc)
	return err
}

// replayOutcome is what a callback's error does to its record.
type replayOutcome int

const (
	outcomeAttempt      replayOutcome = iota // kept with Attempts+1, dead-lettered at MaxAttempts
	outcomeNotAttempted                      // kept exactly as it was
	outcomeDeadLetter                        // moved to the dead letters at once
)

// outcomeOf classifies a non-nil callback error (see Store.Replay). A
// dead-letter verdict stands even when ctx has ended meanwhile: the record
// was delivered and refused.
func outcomeOf(ctx context.Context, err error) replayOutcome {
	switch {
	case errors.Is(err, ErrDeadLetter):
		return outcomeDeadLetter
	case ctx.Err() != nil, errors.Is(err, ErrNotAttempted):
		return outcomeNotAttempted
	}
	return outcomeAttempt
}

// abort drops the temp file; the drained segments stay as they were.
func (d *drain) abort() error {
	var errs []error
	if d.out != nil {
		errs = append(errs, d.out.Close(), d.s.fs.Remove(d.tmp))
	}
	if d.quar != nil {
		errs = append(errs, d.quar.close(), d.dead.close())
	}
	return errors.Join(errs...)
}

// commit makes the drain's outcome durable, in the order the crash
// analysis above needs.
func (d *drain) commit(drained []segment) error {
	s := d.s
	if len(drained) == 0 {
		return d.abort()
	}
	fail := func(err error) error {
		return errors.Join(fmt.Errorf("syncbreaker: replay: commit: %w", err), d.abort())
	}
	// A record removed here may have been spilled again by the handler it
	// was delivered to (a new record in the active file). Under
	// SyncInterval or SyncNever that copy may not be on disk yet, and the
	// removal must not become durable before it: fsync the active file
	// up to what it holds first, whatever the policy.
	if d.republished+d.deadLettered > 0 {
		s.mu.Lock()
		gen := s.writtenGen
		s.mu.Unlock()
		if err := s.syncTo(gen); err != nil {
			return fail(err)
		}
	}
	if d.quar != nil {
		if err := errors.Join(d.quar.close(), d.dead.close()); err != nil {
			return fail(err)
		}
	}
	target := segmentPath(s.path, drained[0].lo, drained[len(drained)-1].hi)
	var outSize int64
	renamed := false
	if d.out != nil {
		if err := d.outW.Flush(); err != nil {
			return fail(err)
		}
		if err := d.out.Sync(); err != nil {
			return fail(err)
		}
		fi, err := d.out.Stat()
		if err != nil {
			return fail(err)
		}
		outSize = fi.Size()
		err = d.out.Close()
		d.out = nil
		if err != nil {
			_ = s.fs.Remove(d.tmp)
			return fmt.Errorf("syncbreaker: replay: commit: %w", err)
		}
		if err := s.fs.Rename(d.tmp, target); err != nil {
			_ = s.fs.Remove(d.tmp)
			return fmt.Errorf("syncbreaker: replay: commit: %w", err)
		}
		renamed = true
		if err := s.fs.SyncDir(s.dir); err != nil {
			// The rename may or may not be durable; either way is a
			// consistent state, but do not delete the sources now.
			return fmt.Errorf("syncbreaker: replay: commit: %w", err)
		}
	}
	var srcSize int64
	var errs []error
	for _, seg := range drained {
		srcSize += seg.size
		if renamed && seg.path == target {
			continue // replaced by the rename
		}
		if err := s.fs.Remove(seg.path); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err) // superseded: the next open removes it
		}
	}
	if err := s.fs.SyncDir(s.dir); err != nil {
		errs = append(errs, err)
	}

	s.republished.Add(d.republished)
	s.deadLettered.Add(d.deadLettered)
	s.quarantined.Add(d.quarantined)
	s.mu.Lock()
	s.pendingRecords += d.kept - d.read
	s.pendingBytes += outSize - srcSize
	s.mu.Unlock()
	s.refreshOldest(d)
	if len(errs) > 0 {
		s.log.Warn("syncbreaker: replay left superseded segments for the next open", "err", errors.Join(errs...))
	}
	return nil
}

// refreshOldest finds the new head of the queue after a replay.
func (s *Store) refreshOldest(d *drain) {
	head := d.first
	if d.kept == 0 {
		segs, _, _, err := listStore(s.path)
		if err == nil && len(segs) > 0 {
			head = firstRecordTime(segs[0].path, maxLineSize(s.cfg.MaxPayloadBytes))
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case !head.IsZero():
		s.oldest = head
	default:
		s.oldest = s.activeFirst
	}
}

func firstRecordTime(path string, maxLine int) time.Time {
	var t time.Time
	f, err := os.Open(path)
	if err != nil {
		return t
	}
	defer f.Close()
	_ = scanRecords(f, maxLine, time.Time{}, nil, func(e *ScanEntry, _ []byte) error {
		if e.Problem == ProblemNone {
			t = e.Record.EnqueuedAt
			return errStopScan
		}
		return nil
	})
	return t
}
