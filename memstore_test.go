package syncbreaker_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/syncbreaker/syncbreaker"
)

// memStore is an in-memory PendingStore that follows the store contract
// (PendingStore.Replay): records for which fn returns nil are removed,
// Permanent ones move to the dead letters with Attempts+1, those fn says
// were not attempted (or that ctx ended on) stay as they were, the others
// stay in order with Attempts+1; fn owns the payload it gets; appends
// during a replay are kept. Replays run one at a time; after Close,
// Append fails with ErrStoreClosed.
type memStore struct {
	replayMu  sync.Mutex // one Replay at a time
	mu        sync.Mutex
	recs      []syncbreaker.Record
	next      int
	appendErr error
	appended  int
	dead      []syncbreaker.Record
	closed    bool
	gone      map[string]bool // tombstones: removed at the next Replay, never delivered
}

// memStore has every optional capability a JSONLStore has, so a Breaker
// over it runs every feature.
var (
	_ syncbreaker.PendingStore = (*memStore)(nil)
	_ syncbreaker.IDAppender   = (*memStore)(nil)
	_ syncbreaker.Tombstoner   = (*memStore)(nil)
)

func (s *memStore) Append(ctx context.Context, payload []byte) error {
	_, err := s.AppendID(ctx, payload)
	return err
}

func (s *memStore) AppendID(_ context.Context, payload []byte) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return "", syncbreaker.ErrStoreClosed
	}
	if s.appendErr != nil {
		return "", s.appendErr
	}
	s.next++
	s.appended++
	id := fmt.Sprintf("r%d", s.next)
	s.recs = append(s.recs, syncbreaker.Record{
		ID:         id,
		Payload:    bytes.Clone(payload),
		EnqueuedAt: time.Now(),
	})
	return id, nil
}

func (s *memStore) SettleLate(id string) { s.tombstone(id) }
func (s *memStore) Discard(id string)    { s.tombstone(id) }

func (s *memStore) tombstone(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.gone == nil {
		s.gone = map[string]bool{}
	}
	s.gone[id] = true
}

func (s *memStore) Replay(ctx context.Context, fn func(context.Context, syncbreaker.Record) error) (syncbreaker.ReplayResult, error) {
	s.replayMu.Lock()
	defer s.replayMu.Unlock()
	s.mu.Lock()
	snapshot := append([]syncbreaker.Record(nil), s.recs...)
	s.mu.Unlock()

	var (
		keep []syncbreaker.Record
		res  syncbreaker.ReplayResult
	)
	var dead []syncbreaker.Record
	for i, rec := range snapshot {
		if ctx.Err() != nil {
			keep = append(keep, snapshot[i:]...)
			res.Skipped += len(snapshot) - i
			break
		}
		s.mu.Lock()
		gone := s.gone[rec.ID]
		s.mu.Unlock()
		if gone {
			continue
		}
		owned := rec
		owned.Payload = bytes.Clone(rec.Payload)
		err := fn(ctx, owned)
		if p, ok := syncbreaker.RespilledPayload(err); ok {
			rec.Payload = bytes.Clone(p)
		}
		switch {
		case err == nil:
			res.Republished++
			continue
		case syncbreaker.IsPermanent(err):
			rec.Attempts++
			dead = append(dead, rec)
			res.DeadLettered++
			continue
		case ctx.Err() != nil, errors.Is(err, syncbreaker.ErrNotAttempted), errors.Is(err, syncbreaker.ErrOpen):
			res.Skipped++
		default:
			rec.Attempts++
			res.Failed++
		}
		keep = append(keep, rec)
	}
	s.mu.Lock()
	s.recs = append(keep, s.recs[len(snapshot):]...)
	for _, r := range snapshot {
		delete(s.gone, r.ID)
	}
	s.dead = append(s.dead, dead...)
	res.Remaining = len(s.recs)
	s.mu.Unlock()
	return res, ctx.Err()
}

func (s *memStore) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	return nil
}

// records returns a copy of what is pending, tombstoned records left out.
func (s *memStore) records() []syncbreaker.Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []syncbreaker.Record
	for _, r := range s.recs {
		if !s.gone[r.ID] {
			out = append(out, r)
		}
	}
	return out
}

// payloads returns the pending payloads as strings, in order.
func (s *memStore) payloads() []string {
	var out []string
	for _, r := range s.records() {
		out = append(out, string(r.Payload))
	}
	return out
}

// recordingRepublisher records the IDs it republished and fails with err
// when err is set.
type recordingRepublisher struct {
	mu  sync.Mutex
	ids []string
	err error
}

func (r *recordingRepublisher) Republish(_ context.Context, rec syncbreaker.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		return r.err
	}
	r.ids = append(r.ids, rec.ID)
	return nil
}

func (r *recordingRepublisher) republished() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.ids...)
}
