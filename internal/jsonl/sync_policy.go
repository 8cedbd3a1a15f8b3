package jsonl

import (
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"time"
)

// SyncPolicy says when appended records are fsynced, that is, what a
// power loss (not a process crash: every policy writes the record to the
// kernel before Append returns, which survives kill -9) may cost.
type SyncPolicy int

const (
	// SyncAlways fsyncs before Append returns, so an acknowledged record
	// survives power loss. Concurrent appenders share one fsync (group
	// commit), so throughput grows with concurrency. It is the default:
	// a spilled payload was already acked to the message queue, so the
	// store is its only copy, and spills happen only while the server is
	// down. Measured on a small shared Linux VM (ext4, 1 KiB payloads):
	// about 0.5 ms per Append serially and 0.12 ms each with 8 concurrent
	// appenders (7 records per fsync), against about 6 µs without fsync:
	// at a daemon's spill rate the cost goes unnoticed. A failed fsync
	// fails every Append it covered, and their records are cut back, so
	// the callers keep the payloads; it is never retried into a success.
	SyncAlways SyncPolicy = iota
	// SyncInterval fsyncs in the background at most Config.SyncInterval
	// after a write: power loss may lose that window of acknowledged
	// records. A background fsync that fails cannot fail the appends it
	// covered, which have returned: it is logged and counted
	// (Stats.SyncErrors), and the records stay, so a process crash still
	// loses none. But on Linux a failed fsync may drop the writes it
	// covered from the write-back and let the next fsync succeed without
	// them, so after a failed fsync power loss may lose any record
	// acknowledged since the last successful one, not only the last
	// window; nothing later proves them durable.
	SyncInterval
	// SyncNever leaves flushing to the OS (typically within 30 s on Linux):
	// survives kill -9, not power loss.
	SyncNever
)

// String returns "always", "interval" or "never".
func (p SyncPolicy) String() string {
	switch p {
	case SyncAlways:
		return "always"
	case SyncInterval:
		return "interval"
	case SyncNever:
		return "never"
	default:
		return "SyncPolicy(" + strconv.Itoa(int(p)) + ")"
	}
}

// DefaultSyncInterval is the background fsync delay of SyncInterval.
const DefaultSyncInterval = 200 * time.Millisecond

// How a failed fsync is handled ("fsyncgate"). On Linux a failed fsync may
// drop the dirty pages it was writing back and clear the error, so the next
// fsync can succeed without the data ever reaching the disk: retrying proves
// nothing about what the failed one covered. So a failure is never retried
// into a success:
//
//   - The writes since the last failed fsync form an epoch. A write
//     remembers its epoch and generation (a syncPoint); a failed fsync ends
//     the epoch, recording the generation known fsynced before it, and every
//     write of that epoch above it has failed for good, whatever later
//     fsyncs report. Every appender waiting on it gets the fsync error.
//   - Under SyncAlways none of those records was acknowledged (Append waits
//     for the fsync), so they are cut back: the active file is truncated to
//     syncedOff, the offset of the last successful fsync, and the pending
//     counts and writtenGen go back with it. The next append starts there;
//     the generations it reuses belong to a new epoch, which tells them
//     apart from the failed ones.
//   - Under SyncInterval and SyncNever the records were acknowledged when
//     written and a process crash must still not lose them, so they stay;
//     the failure is logged and counted (Stats.SyncErrors), and whoever
//     waited on the fsync (a replay's commit) fails. See SyncInterval.
//
// Invariant, under SyncAlways: the records of generations (syncedGen,
// writtenGen] are exactly the bytes (syncedOff, activeOff] of the active
// file. A write moves writtenGen and activeOff together under mu; an
// fsync, a cut or a seal moves the pairs under syncMu and mu.

// syncEpoch is the span of writes between two failed fsyncs (see above).
// Its fields are guarded by Store.mu.
type syncEpoch struct {
	ended   bool
	durable uint64 // generations up to this one were fsynced before it ended
	err     error  // the failed fsync's, as every waiter on it returns it
}

// syncPoint is a write as syncTo waits for it.
type syncPoint struct {
	gen   uint64
	epoch *syncEpoch
}

// syncPointLocked is the point covering everything written so far.
// Requires s.mu.
func (s *Store) syncPointLocked() syncPoint {
	return syncPoint{gen: s.writtenGen, epoch: s.epoch}
}

// doneLocked reports whether p is settled: fsynced (nil), or lost to a
// failed fsync (its error). Requires s.mu.
func (p syncPoint) doneLocked(s *Store) (bool, error) {
	switch {
	case p.epoch.ended && p.gen > p.epoch.durable:
		return true, p.epoch.err
	case p.epoch.ended, s.syncedGen.Load() >= p.gen:
		return true, nil
	}
	return false, nil
}

// syncTo returns nil once every record up to p is fsynced, or the fsync
// error if an fsync covering p failed. This is the group commit. One
// appender at a time leads: it fsyncs everything written so far, while the
// others keep writing under mu and then wait for the round's channel. When
// the fsync ends the channel is closed and they all wake at once, without
// a lock to pass along: those it covered return, and one of the rest leads
// the next round, for every record written meanwhile. (Queueing on a mutex
// instead hands it from waiter to waiter one wake-up at a time, so the next
// fsync starts before most of the released appenders have written again.)
// A failed round ends p's epoch, so its waiters return its error instead
// of trying again.
func (s *Store) syncTo(p syncPoint) error {
	for {
		s.mu.Lock()
		if done, err := p.doneLocked(s); done {
			s.mu.Unlock()
			return err
		}
		if done := s.syncDone; done != nil {
			s.roundWaiters++
			s.mu.Unlock()
			<-done
			continue
		}
		done := make(chan struct{})
		s.syncDone = done
		expect := s.lastWaiters
		s.mu.Unlock()
		s.gatherGroup(expect)
		err := s.syncRound()
		s.mu.Lock()
		s.syncDone = nil
		s.lastWaiters, s.roundWaiters = s.roundWaiters, 0
		s.mu.Unlock()
		close(done)
		if errors.Is(err, ErrClosed) {
			// Close's final fsync settled everything written before it.
			s.mu.Lock()
			done, perr := p.doneLocked(s)
			s.mu.Unlock()
			if done {
				return perr
			}
			return err
		}
		if err != nil {
			// The failure ended p's epoch, so the loop ends: p may still
			// have been fsynced before it, by a seal.
			s.log.Warn("syncbreaker: fsync of the active file failed", "err", err)
		} else {
			s.maybeRecordActive()
		}
	}
}

// groupWait bounds how long an fsync leader waits for its group: far below
// an fsync (about 0.5-2 ms on a small VM), enough for a few writes.
const groupWait = 100 * time.Microsecond

// gatherGroup waits, at most groupWait, until as many appenders wait on
// the leader's round as waited on the previous one and none is between
// entering Append and writing, before the leader takes the fsync's
// target. Without it the leader of the previous round, released first,
// comes straight back and leads the next one alone while the appenders
// released with it are still waking up, and groups alternate between
// large and small (8, 1, 8, 1 with 8 appenders). An appender alone never
// waits: expect is then zero.
func (s *Store) gatherGroup(expect int) {
	if expect == 0 && s.appending.Load() == 0 {
		return
	}
	deadline := time.Now().Add(groupWait)
	for time.Now().Before(deadline) {
		s.mu.Lock()
		joined := s.roundWaiters
		s.mu.Unlock()
		if joined >= expect && s.appending.Load() == 0 {
			return
		}
		runtime.Gosched()
	}
}

// syncRound fsyncs the active file for everything written so far.
func (s *Store) syncRound() error {
	s.syncMu.Lock() // a seal may hold it, and fsyncs too
	defer s.syncMu.Unlock()
	s.mu.Lock()
	target, off, recs, f := s.writtenGen, s.activeOff, s.activeRecords, s.active
	s.mu.Unlock()
	if s.syncedGen.Load() >= target {
		return nil
	}
	if f == nil {
		return ErrClosed
	}
	err := f.Sync()
	s.mu.Lock()
	if err != nil {
		defer s.mu.Unlock()
		return s.syncFailedLocked(err)
	}
	// Before the appenders are released: is the file they wrote to still
	// the store's (see active_identity.go)?
	restored, err := s.checkActiveLocked()
	switch {
	case errors.Is(err, errTruncated): // the truncation failed them
	case err != nil:
		// Their records are only in a file with no name: not stored.
		err = s.syncFailedLocked(err)
	case !restored:
		s.syncedLocked(target, min(off, s.activeOff), min(recs, s.activeRecords))
	}
	s.mu.Unlock()
	if restored {
		s.recordSealed()
	}
	return err
}

// syncActiveLocked fsyncs the active file for everything written so far,
// as syncRound does, for a caller that holds both locks (a seal). Requires
// s.syncMu and s.mu.
func (s *Store) syncActiveLocked() error {
	target, off, recs := s.writtenGen, s.activeOff, s.activeRecords
	if err := s.active.Sync(); err != nil {
		return s.syncFailedLocked(err)
	}
	s.syncedLocked(target, off, recs)
	return nil
}

// syncedLocked records a successful fsync of the active file that covered
// generations up to target, which ended at offset off after recs records.
// Nothing but appends can run between the snapshot and the fsync (a seal
// or a cut needs syncMu), so recs is the count of those off bytes.
// Requires s.syncMu and s.mu.
func (s *Store) syncedLocked(target uint64, off, recs int64) {
	s.syncedGen.Store(target)
	s.syncedOff, s.syncedRecords = off, recs
}

// syncFailedLocked handles a failed fsync of the active file (see "How a
// failed fsync is handled"): it ends the epoch and, under SyncAlways, cuts
// the records written since the last successful fsync back. It returns
// the error every write of the epoch above syncedGen returns: counts
// only, never a payload. Requires s.syncMu and s.mu.
func (s *Store) syncFailedLocked(err error) error {
	s.syncErrs.Add(1)
	synced := s.syncedGen.Load()
	n, size := s.writtenGen-synced, s.activeOff-s.syncedOff
	ep := s.epoch
	ep.ended, ep.durable = true, synced
	s.epoch = new(syncEpoch)
	if s.cfg.Sync != SyncAlways {
		ep.err = fmt.Errorf("syncbreaker: fsync: %w (%d records written since the last successful fsync may not survive power loss)", err, n)
		return ep.err
	}
	// None of these records was acknowledged: their appenders wait for
	// this fsync, or have yet to, and will find the epoch ended.
	s.activeOff = s.syncedOff
	s.writtenGen = synced
	s.pendingRecords -= int64(n)
	s.activeRecords -= int64(n)
	s.pendingBytes -= size
	s.appended.Add(-int64(n))
	if s.activeOff == 0 {
		s.activeFirst, s.activeFirstID = time.Time{}, ""
	}
	// If the cut fails, the next write or seal retries it before anything
	// lands after the cut records (see cutBackLocked); reopening the
	// active file cuts back too.
	if s.active == nil || s.active.Truncate(s.activeOff) != nil {
		s.needTruncate = true
	}
	ep.err = fmt.Errorf("syncbreaker: fsync: %w (%d records written since the last successful fsync were cut back, not stored)", err, n)
	return ep.err
}

// armSyncTimer schedules the SyncInterval background fsync. Requires s.mu.
// A background fsync that fails is logged by syncTo; the appends it
// covered have returned already (see SyncInterval).
func (s *Store) armSyncTimer() {
	if s.timerArmed || s.closed {
		return
	}
	s.timerArmed = true
	s.timerWG.Add(1)
	s.timer = time.AfterFunc(s.cfg.SyncInterval, func() {
		defer s.timerWG.Done()
		s.mu.Lock()
		s.timerArmed = false
		at := s.syncPointLocked()
		s.mu.Unlock()
		_ = s.syncTo(at)
	})
}

// stopSyncTimer cancels a pending background fsync and waits for a running
// one.
func (s *Store) stopSyncTimer() {
	s.mu.Lock()
	t := s.timer
	armed := s.timerArmed
	s.mu.Unlock()
	if t != nil && armed && t.Stop() {
		s.timerWG.Done()
	}
	s.timerWG.Wait()
}
