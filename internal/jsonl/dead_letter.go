package jsonl

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"github.com/syncbreaker/syncbreaker/internal/fsx"
	"os"
	"time"
)

// DeadPath returns the path of the store's dead-letter file, which holds
// the records that reached MaxAttempts (it may not exist).
func (s *Store) DeadPath() string { return s.path + deadSuffix }

// QuarantinePath returns the path of the store's quarantine file, which
// holds the lines that could not be read, byte for byte (it may not exist).
func (s *Store) QuarantinePath() string { return s.path + quarantineSuffix }

// RequeueDead moves every dead-lettered record back to pending with
// Attempts reset to zero, keeping its ID, and returns how many it moved.
// They are replayed after the segments sealed before the call and before
// the records in the active file. The records are written to a new segment and
// fsynced before the dead-letter file is deleted, so a crash in between
// leaves them in both places (re-delivered, never lost). If ctx ends first,
// nothing moves and ctx.Err() is returned.
func (s *Store) RequeueDead(ctx context.Context) (int, error) {
	select {
	case s.replaySem <- struct{}{}:
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	defer func() { <-s.replaySem }()
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return 0, ErrClosed
	}

	deadPath := s.DeadPath()
	src, err := s.fs.OpenFile(deadPath, os.O_RDONLY, 0)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("syncbreaker: requeue: %w", err)
	}
	defer src.Close()

	tmpPath := tempPath(s.path)
	tmp, err := fsx.CreatePrivate(s.fs, tmpPath, os.O_WRONLY|os.O_EXCL)
	if err != nil {
		return 0, fmt.Errorf("syncbreaker: requeue: %w", err)
	}
	done := false
	defer func() {
		if !done {
			_ = tmp.Close()
			_ = s.fs.Remove(tmpPath)
		}
	}()
	quar := &appendLog{fsys: s.fs, path: s.QuarantinePath()}
	w := bufio.NewWriterSize(tmp, 256<<10)
	var (
		n, quarantined int64
		size           int64
		first          time.Time
		enc            []byte
	)
	err = scanRecords(src, maxLineSize(s.cfg.MaxPayloadBytes), time.Time{}, quar, func(e *ScanEntry, raw []byte) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		if e.Problem != ProblemNone || e.Legacy {
			quarantined++
			if e.Problem == ProblemTooLong {
				return nil
			}
			return quar.writeLine(raw)
		}
		rec := e.Record
		rec.Attempts = 0
		if n == 0 {
			first = rec.EnqueuedAt
		}
		n++
		enc = appendRecord(enc[:0], rec)
		size += int64(len(enc))
		_, err := w.Write(enc)
		return err
	})
	if err == nil {
		err = w.Flush()
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := quar.close(); err == nil {
		err = cerr
	}
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil && errors.Is(err, ctxErr) {
			return 0, ctxErr
		}
		return 0, fmt.Errorf("syncbreaker: requeue: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return 0, fmt.Errorf("syncbreaker: requeue: %w", err)
	}
	done = true
	if n == 0 {
		_ = s.fs.Remove(tmpPath)
	} else {
		s.syncMu.Lock()
		seq := s.nextSeq
		s.nextSeq++
		s.syncMu.Unlock()
		if err := s.fs.Rename(tmpPath, segmentPath(s.path, seq, seq)); err != nil {
			_ = s.fs.Remove(tmpPath)
			return 0, fmt.Errorf("syncbreaker: requeue: %w", err)
		}
		if err := s.fs.SyncDir(s.dir); err != nil {
			return 0, fmt.Errorf("syncbreaker: requeue: %w", err)
		}
		s.mu.Lock()
		s.count(fileSummary{records: n, size: size, first: first})
		s.mu.Unlock()
	}
	_ = src.Close()
	if err := s.fs.Remove(deadPath); err != nil {
		return int(n), fmt.Errorf("syncbreaker: requeue: remove dead-letter file: %w", err)
	}
	if err := s.fs.SyncDir(s.dir); err != nil {
		return int(n), fmt.Errorf("syncbreaker: requeue: %w", err)
	}
	s.quarantined.Add(quarantined)
	return int(n), nil
}
