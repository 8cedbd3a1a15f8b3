package jsonl

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
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
// failed ones re-encoded with Attempts+1 into a temp file P.tmp-* (an
// atomicFile), poison ones appended to P.dead, unreadable lines to
// P.quarantine (see triage). Once ctx ends, the rest of the current segment
// is copied unchanged and later segments are not touched. A crash here
// leaves every source segment intact and a temp file that opening deletes:
// the records are simply replayed again (and P.dead or P.quarantine may
// hold a line twice, which loses nothing). A drain that fails instead
// removes its temp file and cuts P.dead and P.quarantine back to where
// they ended before it, since the sources still hold those lines; neither
// side file ever keeps a partial line (see appendLog).
//
// 3. Commit: the active file is fsynced up to what it holds (a record
// removed here may have been spilled again into it), then P.dead and
// P.quarantine (and the directory, for either one just created), then the
// temp file, which is renamed to P.seg.<lo>-<hi> (the range of the drained
// segments, replacing the newest of them when it has that name) and the
// directory fsynced; then the other drained segments are deleted. From the
// rename on, the new segment supersedes them, so a crash before the
// deletes is finished by the next open, and the replay is done: the
// store's counters take it in even if the directory fsync fails, when
// only its durability is in doubt (a power loss could bring the drained
// segments back, to be re-delivered); their deletion then waits for the
// next replay, after a directory fsync that succeeds, or the next open.
// Since every segment sealed later has a higher number, the kept records
// still come before anything appended during the replay.
//
// RequeueDead follows the same order: the moved records are written to a
// new segment through an atomicFile, and only once it is renamed and the
// directory fsynced is P.dead deleted (or replaced, atomically, by the
// records that did not fit).

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
	// A failed fsync fails the seal, so a file is never renamed as if
	// durable; under SyncAlways it also cuts the unacknowledged records
	// back (see syncFailedLocked).
	if cut || s.cfg.Sync != SyncNever && s.syncedGen.Load() < s.writtenGen {
		if err := s.syncActiveLocked(); err != nil {
			return wrapErr(err, "seal")
		}
	}
	// Before it closes the file: a deleted one is restored, which seals
	// what it held (see active_identity.go).
	restored, err := s.checkActiveLocked()
	switch {
	case err != nil:
		return wrapErr(err, "seal")
	case restored || s.activeOff == 0:
		return nil
	}
	// Its number first: a counter at its end leaves the file as it was.
	n, err := s.takeSeq() // never given out again, even if the rename fails
	if err != nil {
		return fmt.Errorf("syncbreaker: seal: %w", err)
	}
	// Windows cannot rename an open file. The descriptor is gone even when
	// Close reports an error, so forget it either way: the next append
	// reopens the active file and cuts it back to activeOff.
	err = s.active.Close()
	s.setActive(nil)
	if err != nil {
		return fmt.Errorf("syncbreaker: seal: %w", err)
	}
	seg := segmentPath(s.path, n, n)
	if err := s.fs.Rename(s.path, seg); err != nil {
		return fmt.Errorf("syncbreaker: seal: %w", err) // the next append reopens P
	}
	// Its count goes to the ledger only once its content is durable: under
	// SyncNever the seal does not fsync it, and a power loss could leave a
	// file of the same size with holes, which open would trust. Close
	// fsyncs such segments and records their counts then (see
	// recordUnsynced), so opening after a clean close reads none of them.
	if s.activeFirstID != "" {
		m := sealedSegment{name: filepath.Base(seg),
			m: mark{Size: s.activeOff, First: s.activeFirstID, Records: s.activeRecords}}
		if s.cfg.Sync != SyncNever {
			s.sealed = append(s.sealed, m)
		} else {
			s.unsynced = append(s.unsynced, m)
		}
	}
	s.activeOff, s.syncedOff, s.activeFirst, s.activeRecords = 0, 0, time.Time{}, 0
	s.syncedRecords, s.entryOff = 0, 0
	s.activeFirstID = ""
	if err := s.fs.SyncDir(s.dir); err != nil {
		return fmt.Errorf("syncbreaker: seal: %w", err)
	}
	// Not the active file until its name is durable: on failure the next
	// append creates it again (see createActive).
	f, err := s.newActiveLocked()
	if err != nil {
		return wrapErr(err, "seal")
	}
	s.setActive(f)
	return nil
}

// sealedSegment is a segment a seal made, with its count.
type sealedSegment struct {
	name string
	m    mark
}

// syncUnsynced fsyncs the segments sealed without an fsync (SyncNever)
// that are still there as they were sealed, and returns them with their
// counts, now durable. A segment a replay has drained since is gone (names
// are never used twice); one that cannot be fsynced is left out, and the
// next open scans it. Called by Close, with no replay running.
func (s *Store) syncUnsynced() []sealedSegment {
	s.mu.Lock()
	list := s.unsynced
	s.unsynced = nil
	s.mu.Unlock()
	var done []sealedSegment
	for _, seg := range list {
		// Read-write: Windows flushes only a file opened for writing.
		f, err := s.fs.OpenFile(filepath.Join(s.dir, seg.name), os.O_RDWR, 0)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err == nil {
			var fi os.FileInfo
			if fi, err = f.Stat(); err == nil && fi.Size() == seg.m.Size {
				err = f.Sync()
			} else if err == nil {
				err = fmt.Errorf("size %d, sealed with %d", fi.Size(), seg.m.Size)
			}
			err = errors.Join(err, f.Close())
		}
		if err != nil {
			s.log.Warn("syncbreaker: close: sealed segment not fsynced; the next open counts it", "file", seg.name, "err", err)
			continue
		}
		done = append(done, seg)
	}
	return done
}

// recordSealed writes the counts of the segments sealed since the last
// call to the ledger, so opening needs no scan of them. Requires s.syncMu
// (not s.mu). A failure only costs a scan at the next open.
func (s *Store) recordSealed() {
	s.mu.Lock()
	sealed := s.sealed
	s.sealed = nil
	s.mu.Unlock()
	if len(sealed) == 0 {
		return
	}
	err := s.updateLedger(true, func(m map[string]mark) {
		for _, seg := range sealed {
			m[seg.name] = seg.m
		}
		delete(m, filepath.Base(s.path)) // the active file it was is gone
	})
	if err != nil {
		s.log.Warn("syncbreaker: ledger: sealed segment not recorded", "err", err)
	}
}

// Replay calls fn for every pending record, oldest first, as
// PendingStore.Replay documents; fn owns the Record it gets. Records
// appended while it runs are left for the next Replay. Only one Replay
// runs at a time; another waits (or returns ctx.Err()). The returned error
// is ctx.Err() when ctx ended, or an I/O error, in which case nothing was
// removed beyond the last checkpoint (see ledger.go). A failed directory fsync
// after the commit's rename is no such error: the replay is done and
// counted, only logged as possibly undone by a power loss (which could
// only re-deliver).
func (s *Store) Replay(ctx context.Context, fn func(context.Context, Record) error) (ReplayResult, error) {
	return s.ReplayWindow(ctx, nil, fn)
}

// ReplayWindow is Replay with up to window() calls of fn running at once,
// on goroutines of their own, so fn must be safe for concurrent use (see
// replay_window.go); window is asked before each call, so a caller can
// narrow it (to 1 while a circuit is half-open, say). Verdicts still apply
// in the records' order: kept records keep their order, and the watermark
// stops at the first record not settled. A nil window is Replay's one call
// at a time, on the caller's goroutine.
func (s *Store) ReplayWindow(ctx context.Context, window func() int, fn func(context.Context, Record) error) (ReplayResult, error) {
	res, err := s.replayWindow(ctx, window, fn)
	return res, prefixed(err, "replay")
}

func (s *Store) replayWindow(ctx context.Context, window func() int, fn func(context.Context, Record) error) (ReplayResult, error) {
	var res ReplayResult
	if err := ctx.Err(); err != nil {
		return s.untouched(), err
	}
	select {
	case s.replaySem <- struct{}{}:
	case <-ctx.Done():
		return s.untouched(), ctx.Err()
	}
	defer func() { <-s.replaySem }()

	s.syncMu.Lock()
	err := s.sealLocked()
	s.recordSealed()
	var segs []segment
	var superseded, temps []string
	if err == nil {
		segs, superseded, temps, err = listStore(s.fs, s.path)
	}
	if err == nil {
		present := map[string]bool{}
		for _, seg := range segs {
			present[filepath.Base(seg.path)] = true
		}
		for _, p := range superseded {
			present[filepath.Base(p)] = true
		}
		s.noticeLostSegments(present)
	}
	s.mu.Lock()
	sealed := s.pendingRecords - s.activeRecords // what this replay is about
	s.mu.Unlock()
	s.syncMu.Unlock()
	if err != nil {
		return s.untouched(), err // nothing was read
	}
	s.removeLeftovers(superseded, temps)
	s.dead.refresh()
	s.quar.refresh()
	maxLine := s.readLimit()
	d := &drain{
		s: s, fn: fn, res: &res, maxLine: maxLine, sealed: sealed,
		tri:      triage{quar: s.quar, maxLine: maxLine, log: s.log},
		deadMark: s.dead.mark(),
		quarMark: s.quar.mark(),
		// The first checkpoint comes checkpointEvery into the drain: a
		// short replay commits before it needs one.
		checkpointed: s.cfg.now(),
	}
	if window != nil {
		d.win = &replayWindow{d: d, ctx: ctx, size: window}
	}
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
	if d.win != nil {
		if err := d.win.end(nil); err != nil {
			return res, errors.Join(err, d.abort())
		}
	}
	if err := d.commit(drained); err != nil {
		return res, err
	}
	// Records in segments a cancelled replay never reached were left as
	// they were too.
	res.Skipped += int(max(sealed-d.read, 0))
	s.mu.Lock()
	res.Remaining = int(s.pendingRecords)
	s.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return res, err
	}
	return res, nil
}

// removeLeftovers removes what an earlier commit or rewrite failed to
// remove: temp files (no rewrite runs now) and superseded segments, once a
// directory fsync has made the rename that superseded them durable. Open
// removes them too; this keeps a long-running store from carrying them.
func (s *Store) removeLeftovers(superseded, temps []string) {
	if len(superseded)+len(temps) == 0 {
		return
	}
	err := s.fs.SyncDir(s.dir)
	for _, p := range slices.Concat(temps, superseded) {
		if err != nil {
			break
		}
		if err = s.fs.Remove(p); errors.Is(err, os.ErrNotExist) {
			err = nil
		}
	}
	if err != nil {
		s.log.Warn("syncbreaker: removing leftovers of an earlier replay failed; the next open retries", "err", err)
	}
}

// untouched is the result of a Replay that ended before it began: every
// pending record left as it was.
func (s *Store) untouched() ReplayResult {
	s.mu.Lock()
	defer s.mu.Unlock()
	return ReplayResult{Remaining: int(s.pendingRecords), Skipped: int(s.pendingRecords)}
}

// drain is the state of one Replay's pass over the segments.
type drain struct {
	s       *Store
	fn      func(context.Context, Record) error
	win     *replayWindow // nil: one call of fn at a time
	res     *ReplayResult
	sealed  int64 // pending records in segments when the drain began
	maxLine int
	tri     triage
	out     *atomicFile // the kept records; nil until the first
	enc     []byte
	// Where the side files ended before the drain: an abort cuts them
	// back, since the drained segments still hold what went there.
	deadMark, quarMark int64
	read               int64   // records and bad lines read from drained segments
	segRead            []int64 // read, per drained segment
	kept               int64
	first              time.Time // EnqueuedAt of the first kept record
	firstKeptID        string    // and its ID
	// settled counts records removed or dead-lettered, whether or not
	// the commit makes it so (see removed).
	republished, deadLettered, quarantined int64
	progress                               []*progress // per drained segment
	lateSettled                            []string    // tombstones this drain consumed (see late_settle.go)
	checkpointed                           time.Time   // when the ledger was last written
}

func (d *drain) keep(line []byte, at time.Time, id string) error {
	if d.out == nil {
		out, err := createAtomic(d.s.fs, d.s.path)
		if err != nil {
			return wrapErr(err, "replay")
		}
		d.out = out
	}
	if d.kept == 0 {
		d.first, d.firstKeptID = at, id
	}
	d.s.noteLine(len(line)) // one more attempt's digit
	d.kept++
	_, err := d.out.Write(line)
	return err
}

func (d *drain) segment(ctx context.Context, seg segment) error {
	s := d.s
	f, err := s.fs.OpenFile(seg.path, os.O_RDONLY, 0)
	if err != nil {
		return wrapErr(err, "replay")
	}
	defer f.Close()
	before := d.read
	d.tri.file = filepath.Base(seg.path)
	p := d.startProgress(seg)
	err = scanRecords(f, d.maxLine, time.Time{}, s.quar, func(e *ScanEntry, raw []byte) error {
		if e.Offset < p.start {
			return nil // settled before a crash (see ledger.go)
		}
		d.read++
		if d.win != nil {
			return d.win.add(p, e, raw)
		}
		kind, err := d.line(ctx, e, raw)
		if err != nil {
			return err
		}
		p.advance(e, kind)
		return d.maybeCheckpoint(p)
	})
	if err != nil && d.win != nil {
		err = d.win.end(err) // wait for the calls in flight
	}
	d.segRead = append(d.segRead, d.read-before)
	return err
}

// line hands one line of a segment to fn, or to the quarantine, and
// reports how it is settled: gone from pending (delivered, discarded,
// dead-lettered or quarantined), or kept.
func (d *drain) line(ctx context.Context, e *ScanEntry, raw []byte) (settledKind, error) {
	if kind, done, err := d.settleWithoutFn(e, raw); done {
		return kind, err
	}
	// The callback owns what it gets: it may keep the payload, change
	// it or hand it to an asynchronous publisher. A record kept or
	// dead-lettered is written from stored, the bytes as read, which
	// the scan leaves alone until the next line.
	stored := e.Record
	called := ctx.Err() == nil
	var ferr error
	if called {
		rec := stored
		rec.Payload = bytes.Clone(stored.Payload)
		ferr = d.fn(ctx, rec)
	}
	return d.outcome(ctx, stored, raw, called, ferr)
}

// settleWithoutFn settles the lines fn never sees, and reports whether e
// is one: a bad line goes to the quarantine, a record settled late (see
// late_settle.go) is removed.
func (d *drain) settleWithoutFn(e *ScanEntry, raw []byte) (kind settledKind, done bool, err error) {
	// Segments are written whole and fsynced before they get their
	// name, and checked at open; a bad line is damage since.
	if bad, err := d.tri.take(e, raw); bad {
		d.quarantined++
		return settledQuarantined, true, err
	}
	if ok, isCopy := d.s.tombstoned(e.Record.ID); ok {
		// Handled after an earlier round gave up on it, or a copy of a
		// record kept elsewhere: not again.
		kind = settledRepublished
		if isCopy {
			kind = settledDiscarded
		} else {
			d.republished++
		}
		d.lateSettled = append(d.lateSettled, e.Record.ID)
		return kind, true, nil
	}
	return kept, false, nil
}

// outcome applies fn's verdict ferr on the record stored (raw is its line
// as read): removed, kept as it was, kept with one more attempt, or
// dead-lettered. called is false when ctx had ended before fn was called.
func (d *drain) outcome(ctx context.Context, stored Record, raw []byte, called bool, ferr error) (settledKind, error) {
	s := d.s
	if called && ferr == nil {
		d.republished++
		return settledRepublished, nil
	}
	if p, ok := replacementOf(ferr); ok {
		// Kept with the bytes the handler spilled in its place (see
		// WithPayload): encoded anew, attempt or not as ferr says.
		stored.Payload = p
		raw = appendRecord(nil, stored)
		raw = raw[:len(raw)-1] // as read: without its newline
	}
	switch outcomeOf(ctx, ferr) {
	case outcomeDeadLetter:
		stored.Attempts++
		d.enc = appendRecord(d.enc[:0], stored)
		return settledDeadLettered, d.deadLetter(stored, "permanent")
	case outcomeNotAttempted:
		d.res.Skipped++
		return kept, d.keep(append(append(d.enc[:0], raw...), '\n'), stored.EnqueuedAt, stored.ID)
	}
	stored.Attempts++
	d.enc = appendRecord(d.enc[:0], stored)
	if max := s.cfg.MaxAttempts; max > 0 && stored.Attempts >= max {
		return settledDeadLettered, d.deadLetter(stored, "max attempts")
	}
	d.res.Failed++
	return kept, d.keep(d.enc, stored.EnqueuedAt, stored.ID)
}

// progress is a drain's watermark in one segment (see ledger.go).
type progress struct {
	seg    segment
	name   string
	start  int64 // the watermark the drain started from
	lines  int64 // and its line count
	m      mark  // the watermark so far
	saved  int64 // m.Lines at the last checkpoint
	frozen bool  // a record stays pending: the watermark stops there
	// What this drain settled in the segment: every line (removed if the
	// commit replaces the segment), those the watermark passed, and those
	// it passed at the last checkpoint (removed whatever follows).
	all, passed, savedGone removal
}

// settledKind is how a line of a drained segment is settled, if it is.
type settledKind int

const (
	kept               settledKind = iota // stays pending
	settledRepublished                    // fn accepted it, or it was settled late
	settledDiscarded                      // a copy of another record (see Store.Discard)
	settledDeadLettered
	settledQuarantined
)

// removal counts settled lines by how they left pending.
type removal struct {
	republished, discarded, deadLettered, quarantined int64
}

func (r *removal) add(k settledKind) {
	switch k {
	case settledRepublished:
		r.republished++
	case settledDiscarded:
		r.discarded++
	case settledDeadLettered:
		r.deadLettered++
	case settledQuarantined:
		r.quarantined++
	}
}

func (r *removal) plus(o removal) {
	r.republished += o.republished
	r.discarded += o.discarded
	r.deadLettered += o.deadLettered
	r.quarantined += o.quarantined
}

func (r removal) records() int64 { return r.republished + r.discarded + r.deadLettered + r.quarantined }

func (d *drain) startProgress(seg segment) *progress {
	name := filepath.Base(seg.path)
	m := d.s.markOf(name)
	if m.Size != seg.size {
		m = mark{} // not this file's (see matchMark)
	}
	p := &progress{seg: seg, name: name, start: m.Off, lines: m.Lines, m: m, saved: m.Lines}
	d.progress = append(d.progress, p)
	return p
}

// advance moves the watermark past a settled line, unless a line before it
// stayed pending. A mark is bound to the segment's first record ID, so a
// segment whose first line is not a record gets none.
func (p *progress) advance(e *ScanEntry, kind settledKind) {
	p.all.add(kind)
	switch {
	case p.frozen:
		return
	case kind == kept:
		p.frozen = true
		return
	case p.m.First == "":
		if e.Offset != 0 || e.Problem != ProblemNone || e.Legacy {
			p.frozen = true
			return
		}
		p.m.First = e.Record.ID
	}
	p.m.Off, p.m.Size = e.Offset+e.Length, p.seg.size
	p.m.Lines++
	p.passed.add(kind)
}

// maybeCheckpoint writes the drain's progress to the ledger, at most every
// checkpointEvery.
func (d *drain) maybeCheckpoint(p *progress) error {
	if p.m.Lines == p.saved {
		return nil
	}
	now := d.s.cfg.now()
	if now.Sub(d.checkpointed) < d.s.cfg.checkpointEvery {
		return nil
	}
	d.checkpointed = now
	return d.checkpoint(p)
}

// checkpoint makes what the watermark passes durable, then the watermark.
// A failed fsync fails the replay, as it would fail its commit: a later
// fsync that succeeds proves nothing for the writes the failed one
// covered. A ledger that could not be written only costs re-delivery.
func (d *drain) checkpoint(p *progress) error {
	s := d.s
	s.mu.Lock()
	at := s.syncPointLocked()
	s.mu.Unlock()
	// The handler may have spilled a settled record again into the active
	// file, and dead-lettered or quarantined ones are only in those files
	// once their source is skipped.
	if err := errors.Join(s.syncTo(at), s.dead.sync(), s.quar.sync()); err != nil {
		return wrapErr(err, "replay: checkpoint")
	}
	// A record spilled again is in the active file: it must still be the
	// store's before the ledger skips its source.
	if err := s.verifyActive(); err != nil {
		return wrapErr(err, "replay: checkpoint")
	}
	// From here the side files hold lines whose source the ledger skips:
	// an abort must not cut them back.
	d.deadMark, d.quarMark = s.dead.mark(), s.quar.mark()
	if err := s.updateLedger(false, func(m map[string]mark) { m[p.name] = p.m }); err != nil {
		s.log.Warn("syncbreaker: replay: checkpoint not saved", "err", err)
		return nil
	}
	p.saved, p.savedGone = p.m.Lines, p.passed
	return nil
}

// deadLetter appends the record just encoded into d.enc to the dead-letter
// file.
func (d *drain) deadLetter(rec Record, why string) error {
	d.deadLettered++
	d.s.log.Warn("syncbreaker: dead-lettered record", "id", rec.ID, "attempts", rec.Attempts, "reason", why)
	_, err := d.s.dead.Write(d.enc)
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

// abort drops the temp file and takes back what the drain added to the
// side files; the drained segments stay as they were.
func (d *drain) abort() error {
	// What a checkpoint saved stays settled: the ledger skips it from now
	// on, so it is no longer pending, and it is all the drain removed.
	// Every other record is left as it was: no attempt it made counts.
	gone := d.removed(nil, false)
	d.s.mu.Lock()
	d.s.pendingRecords -= gone.records()
	d.res.Remaining = int(d.s.pendingRecords)
	d.s.mu.Unlock()
	d.res.Failed = 0
	d.res.Skipped = int(max(d.sealed-gone.records(), 0))
	var errs []error
	if d.out != nil {
		errs = append(errs, d.out.Abort())
	}
	return errors.Join(append(errs, d.s.dead.rollback(d.deadMark), d.s.quar.rollback(d.quarMark))...)
}

// commit makes the drain's outcome durable, in the order the crash
// analysis above needs, and counts it once it is on disk.
func (d *drain) commit(drained []segment) error {
	s := d.s
	if len(drained) == 0 {
		return d.abort()
	}
	fail := func(err error) error {
		return errors.Join(wrapErr(err, "replay: commit"), d.abort())
	}
	// A record removed here may have been spilled again by the handler it
	// was delivered to (a new record in the active file). Under
	// SyncInterval or SyncNever that copy may not be on disk yet, and the
	// removal must not become durable before it: fsync the active file
	// up to what it holds first, whatever the policy.
	if d.republished+d.deadLettered > 0 {
		s.mu.Lock()
		at := s.syncPointLocked()
		s.mu.Unlock()
		if err := s.syncTo(at); err != nil {
			return fail(err)
		}
	}
	if err := errors.Join(s.dead.sync(), s.quar.sync()); err != nil {
		return fail(err)
	}
	if d.republished+d.deadLettered > 0 {
		if err := s.verifyActive(); err != nil { // as for the fsync above
			return fail(err)
		}
	}
	rev, err := s.takeSeq()
	if err != nil {
		return fail(err)
	}
	target := rewritePath(s.path, drained[0].lo, drained[len(drained)-1].hi, rev)
	renamed := false
	if d.out != nil {
		var err error
		if renamed, err = d.out.Commit(target); !renamed {
			return fail(err)
		}
		if err != nil {
			// The new segment is in place and supersedes the drained
			// ones: the replay is done, and is counted. Only its
			// durability is in doubt, and a power loss could only bring
			// the drained segments back (re-delivery, never loss). Their
			// removal must not become durable before the rename: the
			// next replay or open removes them, after a directory fsync.
			d.publish(drained, nil)
			d.forget(drained, nil, d.written(target))
			s.log.Warn("syncbreaker: replay: directory fsync after the commit failed; drained segments left for the next replay or open", "err", err)
			return nil
		}
	}
	var stayed []int // drained segments still live after a failed removal
	var errs []error
	for i, seg := range drained {
		if err := s.fs.Remove(seg.path); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
			if !renamed {
				stayed = append(stayed, i) // nothing supersedes it: its records stay pending
			}
		}
	}
	if err := s.fs.SyncDir(s.dir); err != nil {
		errs = append(errs, err)
	}
	d.publish(drained, stayed)
	var written *sealedSegment
	if renamed {
		written = d.written(target)
	}
	d.forget(drained, stayed, written)
	if len(errs) > 0 {
		s.log.Warn("syncbreaker: replay left drained segments for the next replay or open", "err", errors.Join(errs...))
	}
	return nil
}

// written is what the ledger should know of the segment the commit wrote
// at target.
func (d *drain) written(target string) *sealedSegment {
	if d.out == nil || d.firstKeptID == "" {
		return nil
	}
	return &sealedSegment{name: filepath.Base(target),
		m: mark{Size: d.out.Size(), First: d.firstKeptID, Records: d.kept}}
}

// forget drops the watermarks of the drained segments, which the commit
// replaced; a segment that stayed keeps its mark, and its lines below it
// are no longer pending.
func (d *drain) forget(drained []segment, stayed []int, out *sealedSegment) {
	s := d.s
	var gone []string
	for i, seg := range drained {
		name := filepath.Base(seg.path)
		if slices.Contains(stayed, i) {
			for _, p := range d.progress {
				if p.name == name {
					s.mu.Lock()
					s.pendingRecords -= p.saved - p.lines
					s.mu.Unlock()
				}
			}
			continue
		}
		gone = append(gone, name)
	}
	s.mu.Lock()
	s.unsynced = slices.DeleteFunc(s.unsynced, func(u sealedSegment) bool { return slices.Contains(gone, u.name) })
	s.mu.Unlock()
	// Stale entries cannot match a rewritten file (see matchMark):
	// dropping them keeps the ledger small, and the new segment's count
	// spares the next open a scan of it.
	s.dropTombstones(d.lateSettled)
	err := s.updateLedger(true, func(m map[string]mark) {
		for _, name := range gone {
			delete(m, name)
		}
		if out != nil {
			m[out.name] = out.m
		}
	})
	if err != nil {
		s.log.Warn("syncbreaker: replay: ledger not updated", "err", err)
	}
}

// removed is what the drain took out of pending, and sets the result's
// counts to it: in a segment the commit replaced (committed, and not in
// stayed), every line it settled; in any other, only those below the
// watermark its last checkpoint saved. A record is removed once a durable
// checkpoint or commit says so, and counted then, never before.
func (d *drain) removed(stayed []int, committed bool) removal {
	var r removal
	for i, p := range d.progress {
		if committed && !slices.Contains(stayed, i) {
			r.plus(p.all)
		} else {
			r.plus(p.savedGone)
		}
	}
	d.res.Republished, d.res.Discarded = int(r.republished), int(r.discarded)
	d.res.DeadLettered, d.res.Quarantined = int(r.deadLettered), int(r.quarantined)
	s := d.s
	s.republished.Add(r.republished)
	s.deadLettered.Add(r.deadLettered)
	s.quarantined.Add(r.quarantined)
	return r
}

// publish counts the drain's outcome, on disk now: the drained segments'
// records are replaced by the kept ones, except in the segments (indexes
// into drained) that stayed.
func (d *drain) publish(drained []segment, stayed []int) {
	s := d.s
	var srcSize, outSize int64
	for _, seg := range drained {
		srcSize += seg.size
	}
	read := d.read
	for _, i := range stayed {
		srcSize -= drained[i].size
		read -= d.segRead[i]
	}
	if d.out != nil {
		outSize = d.out.Size()
	}
	d.removed(stayed, true)
	s.mu.Lock()
	s.pendingRecords += d.kept - read
	s.pendingBytes += outSize - srcSize
	s.mu.Unlock()
	s.refreshOldest(d)
}

// refreshOldest finds the new head of the queue after a replay.
func (s *Store) refreshOldest(d *drain) {
	head := d.first
	if d.kept == 0 {
		segs, _, _, err := listStore(s.fs, s.path)
		if err == nil && len(segs) > 0 {
			// An unreadable head only leaves the age unknown until the
			// next replay: the replay itself is done.
			head, _ = headTime(s.fs, segs[0].path, s.markOf(filepath.Base(segs[0].path)).Off, s.readLimit())
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
