package jsonl

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"
)

// DeadPath returns the path of the store's dead-letter file, which holds
// the records that reached MaxAttempts (it may not exist).
func (s *Store) DeadPath() string { return s.path + deadSuffix }

// QuarantinePath returns the path of the store's quarantine file, which
// holds the lines that could not be read, byte for byte (it may not exist).
func (s *Store) QuarantinePath() string { return s.path + quarantineSuffix }

// RequeueDead moves the dead-lettered records back to pending with
// Attempts reset to zero, keeping their IDs, and returns how many it moved.
// They are replayed after the segments sealed before the call and before
// the records in the active file. Damaged lines of the dead-letter file go
// to the quarantine.
//
// The dead letters already count against MaxBytes, so moving them never
// needs room the store does not have; but pending records alone never
// pass MaxBytes either: if they would (a store over its bound, after a
// repair or a lowered limit), the oldest that fit are moved, the others
// stay in the dead-letter file, and the error wraps ErrFull and says how
// many stay.
//
// The records are written to a new segment, fsynced and renamed into
// place (the directory fsynced) before the dead-letter file is deleted or
// replaced by the records that stay, so a crash in between leaves them in
// both places: re-delivered, never lost. If ctx ends first, nothing moves
// and ctx.Err() is returned. An error after the rename still comes with
// the count moved: those records are pending (and counted), and until the
// dead-letter file is dealt with this store remembers which of its records
// are already pending, so the next call finishes the job rather than
// moving them twice (reopening the store forgets it: they may then be
// delivered twice, under the same IDs).
func (s *Store) RequeueDead(ctx context.Context) (int, error) {
	select {
	case s.replaySem <- struct{}{}:
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	defer func() { <-s.replaySem }()
	s.mu.Lock()
	closed, room := s.closed, int64(-1)
	if s.cfg.MaxBytes > 0 {
		room = max(0, s.cfg.MaxBytes-s.pendingBytes)
	}
	s.mu.Unlock()
	if closed {
		return 0, ErrClosed
	}
	s.dead.refresh()
	s.quar.refresh()
	if s.deadMoved > s.dead.size.Load() {
		s.deadMoved = 0 // not the file it was: replaced by hand
	}

	deadPath := s.DeadPath()
	src, err := s.fs.OpenFile(deadPath, os.O_RDONLY, 0)
	if errors.Is(err, os.ErrNotExist) {
		s.deadMoved = 0
		return 0, nil
	}
	if err != nil {
		return 0, wrapErr(err, "requeue")
	}
	srcOpen := true
	defer func() {
		if srcOpen {
			_ = src.Close()
		}
	}()
	in := &endReader{r: src}
	if _, err := io.CopyN(io.Discard, in, s.deadMoved); err != nil {
		return 0, wrapErr(err, "requeue")
	}
	q := &requeue{s: s, room: room, base: s.deadMoved}
	defer q.abort()
	maxLine := s.readLimit()
	tri := &triage{quar: s.quar, maxLine: maxLine, log: s.log, file: filepath.Base(deadPath)}
	quarMark := s.quar.mark()
	err = scanRecords(in, maxLine, time.Time{}, s.quar, func(e *ScanEntry, raw []byte) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		if bad, err := tri.take(e, raw); bad {
			return err
		}
		return q.add(e, raw)
	})
	if err == nil {
		err = s.quar.sync() // the bad lines must be durable before the dead-letter file goes
	}
	// From the rename on, the moved records are pending: count them
	// whatever follows.
	renamed := false
	if err == nil && q.n > 0 {
		var seq uint64
		if seq, err = s.takeSeq(); err == nil {
			renamed, err = q.moved.Commit(segmentPath(s.path, seq, seq))
		}
		if renamed {
			s.mu.Lock()
			s.count(fileSummary{records: q.n, size: q.moved.Size(), first: q.first})
			s.mu.Unlock()
		}
	}
	n := int(q.n)
	if err != nil && !renamed {
		err = errors.Join(err, s.quar.rollback(quarMark))
		if ctxErr := ctx.Err(); ctxErr != nil && errors.Is(err, ctxErr) {
			return 0, ctxErr
		}
		return 0, wrapErr(err, "requeue")
	}
	s.quarantined.Add(int64(tri.lines))
	// The dead-letter file's head, up to the first record that stays, is
	// pending or quarantined now.
	s.deadMoved = in.n
	if q.rest != nil {
		s.deadMoved = q.restAt
	}
	if err != nil {
		return n, wrapErr(err, "requeue")
	}
	if q.n == 0 {
		// An earlier call's rename may not be durable yet, and must be
		// before the dead-letter file changes.
		if err := s.fs.SyncDir(s.dir); err != nil {
			return 0, wrapErr(err, "requeue")
		}
	}
	srcOpen = false
	_ = src.Close() // Windows cannot remove or replace an open file
	return n, q.finish(deadPath)
}

// requeue is one RequeueDead's pass over the dead letters.
type requeue struct {
	s     *Store
	room  int64       // bytes pending may grow by; negative: no limit
	base  int64       // offset in the dead-letter file where the scan started
	moved *atomicFile // the records moving to pending; nil until the first
	n     int64
	first time.Time
	// The records that do not fit, from the first of them on, in the
	// order they came: the dead-letter file's new content.
	rest   *atomicFile
	left   int64
	restAt int64 // offset of the first of them in the dead-letter file
	enc    []byte
}

// add moves the record e (line raw) to pending if it fits, or keeps it
// for the dead letters, as every record after one that did not fit.
func (q *requeue) add(e *ScanEntry, raw []byte) error {
	if q.rest == nil {
		rec := e.Record
		rec.Attempts = 0
		q.enc = appendRecord(q.enc[:0], rec)
		if q.room < 0 || q.size()+int64(len(q.enc)) <= q.room {
			if q.moved == nil {
				out, err := createAtomic(q.s.fs, q.s.path)
				if err != nil {
					return err
				}
				q.moved = out
			}
			if q.n == 0 {
				q.first = rec.EnqueuedAt
			}
			q.n++
			_, err := q.moved.Write(q.enc)
			return err
		}
		out, err := createAtomic(q.s.fs, q.s.path)
		if err != nil {
			return err
		}
		q.rest, q.restAt = out, q.base+e.Offset
	}
	q.left++
	q.enc = append(append(q.enc[:0], raw...), '\n')
	_, err := q.rest.Write(q.enc)
	return err
}

func (q *requeue) size() int64 {
	if q.moved == nil {
		return 0
	}
	return q.moved.Size()
}

// finish deletes the dead-letter file at path, or replaces it with the
// records that stay.
func (q *requeue) finish(path string) error {
	s := q.s
	defer s.dead.refresh()
	if q.rest != nil {
		renamed, err := q.rest.Commit(path)
		if renamed {
			s.deadMoved = 0 // the file holds only the records that stay
		}
		if err != nil {
			return wrapErr(err, "requeue: replace dead-letter file")
		}
		s.mu.Lock()
		pending := s.pendingBytes
		s.mu.Unlock()
		return fmt.Errorf("%w: %d dead letters stay in %s, %d bytes pending, limit %d",
			ErrFull, q.left, filepath.Base(path), pending, s.cfg.MaxBytes)
	}
	if err := s.fs.Remove(path); err != nil {
		return wrapErr(err, "requeue: remove dead-letter file")
	}
	s.deadMoved = 0
	if err := s.fs.SyncDir(s.dir); err != nil {
		return wrapErr(err, "requeue")
	}
	return nil
}

// abort removes the temp files of a requeue that did not commit them.
func (q *requeue) abort() {
	for _, out := range []*atomicFile{q.moved, q.rest} {
		if out != nil {
			_ = out.Abort()
		}
	}
}
