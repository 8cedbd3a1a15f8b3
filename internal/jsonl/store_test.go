package jsonl

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func openTestStore(t *testing.T, path string, cfg Config) *Store {
	t.Helper()
	s, err := Open(path, cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func storePath(t *testing.T) string {
	t.Helper()
	return filepath.Join(t.TempDir(), "sync-pending.jsonl")
}

// drainAll replays everything successfully and returns the records in
// delivery order (payloads copied).
func drainAll(t *testing.T, s *Store) []Record {
	t.Helper()
	var got []Record
	res, err := s.Replay(context.Background(), func(_ context.Context, r Record) error {
		r.Payload = bytes.Clone(r.Payload)
		got = append(got, r)
		return nil
	})
	require.NoError(t, err)
	assert.Equal(t, len(got), res.Republished)
	return got
}

// failAll replays everything with a failing fn: every record stays, with
// Attempts grown by one.
func failAll(t *testing.T, s *Store) []Record {
	t.Helper()
	var got []Record
	_, err := s.Replay(context.Background(), func(_ context.Context, r Record) error {
		r.Payload = bytes.Clone(r.Payload)
		got = append(got, r)
		return errors.New("server down")
	})
	require.NoError(t, err)
	return got
}

func appendAll(t *testing.T, s *Store, payloads ...[]byte) {
	t.Helper()
	for _, p := range payloads {
		require.NoError(t, s.Append(context.Background(), p))
	}
}

func numbered(n int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		out[i] = fmt.Appendf(nil, `{"n":%d}`, i)
	}
	return out
}

func payloadsOf(recs []Record) [][]byte {
	out := make([][]byte, len(recs))
	for i, r := range recs {
		out[i] = r.Payload
	}
	return out
}

func TestStoreAppendReopenReplayByteExact(t *testing.T) {
	path := storePath(t)
	payloads := [][]byte{
		[]byte(`{"cmd":"git status"}`),
		[]byte("plain text, not json"),
		{},
		[]byte("line one\nline two\n"),
		{0, 0, 0xff, 0xfe},
		[]byte(`{"pretty": true,  "x" : [1 , 2]}`),
		bytes.Repeat([]byte("a"), 100<<10), // over bufio.Scanner's 64 KiB
	}
	s, err := Open(path, Config{})
	require.NoError(t, err)
	appendAll(t, s, payloads...)
	st := s.Stats()
	assert.EqualValues(t, len(payloads), st.PendingRecords)
	assert.False(t, st.OldestEnqueuedAt.IsZero())
	require.NoError(t, s.Close())
	require.NoError(t, s.Close(), "second Close")

	s = openTestStore(t, path, Config{})
	assert.True(t, s.RepairReport().Clean())
	assert.EqualValues(t, len(payloads), s.Stats().PendingRecords)
	first := failAll(t, s)
	require.Equal(t, payloads, payloadsOf(first))
	got := drainAll(t, s)
	require.Len(t, got, len(payloads))
	for i := range got {
		assert.True(t, bytes.Equal(payloads[i], got[i].Payload), "payload %d", i)
		assert.Equal(t, first[i].ID, got[i].ID, "ID stable across replays")
		assert.Equal(t, 1, got[i].Attempts)
		assert.True(t, first[i].EnqueuedAt.Equal(got[i].EnqueuedAt))
	}
	assert.Empty(t, drainAll(t, s))
	assert.Zero(t, s.Stats().PendingRecords)
	assert.Zero(t, s.Stats().PendingBytes)
}

func TestStoreTenMiBPayload(t *testing.T) {
	path := storePath(t)
	s := openTestStore(t, path, Config{})
	big := bytes.Repeat([]byte{0xAB, '\n', '{'}, (10<<20)/3)
	appendAll(t, s, big)
	require.NoError(t, s.Close())
	s = openTestStore(t, path, Config{})
	got := drainAll(t, s)
	require.Len(t, got, 1)
	assert.True(t, bytes.Equal(big, got[0].Payload))
}

func TestStoreReplayKeepsFailedInOrderWithAttempts(t *testing.T) {
	s := openTestStore(t, storePath(t), Config{})
	appendAll(t, s, numbered(10)...)
	res, err := s.Replay(context.Background(), func(_ context.Context, r Record) error {
		if bytes.Contains(r.Payload, []byte(`"n":3}`)) || bytes.Contains(r.Payload, []byte(`"n":7}`)) {
			return nil
		}
		return errors.New("no")
	})
	require.NoError(t, err)
	assert.Equal(t, ReplayResult{Republished: 2, Remaining: 8, Failed: 8}, res)
	got := drainAll(t, s)
	want := numbered(10)
	want = append(want[:3], want[4:]...)
	want = append(want[:6], want[7:]...)
	assert.Equal(t, want, payloadsOf(got))
	for _, r := range got {
		assert.Equal(t, 1, r.Attempts)
	}
}

func TestStoreReplayContextEndLeavesRestUntouched(t *testing.T) {
	s := openTestStore(t, storePath(t), Config{})
	appendAll(t, s, numbered(10)...)
	ctx, cancel := context.WithCancel(context.Background())
	seen := 0
	res, err := s.Replay(ctx, func(ctx context.Context, r Record) error {
		seen++
		switch seen {
		case 1:
			return nil
		case 2:
			return errors.New("no") // a real failure: counted
		case 3:
			cancel()
			return ctx.Err() // failed because cancelled: not an attempt
		}
		t.Fatal("fn called after ctx ended")
		return nil
	})
	require.ErrorIs(t, err, context.Canceled)
	assert.Equal(t, ReplayResult{Republished: 1, Remaining: 9, Failed: 1, Skipped: 8}, res)
	got := drainAll(t, s)
	require.Equal(t, numbered(10)[1:], payloadsOf(got))
	assert.Equal(t, 1, got[0].Attempts)
	for _, r := range got[1:] {
		assert.Zero(t, r.Attempts)
	}
}

func TestStoreAppendDuringReplayIsKeptForNextReplay(t *testing.T) {
	s := openTestStore(t, storePath(t), Config{})
	appendAll(t, s, numbered(3)...)
	res, err := s.Replay(context.Background(), func(ctx context.Context, r Record) error {
		// Appending from inside fn must not block (no lock held across fn)
		// and must not be lost.
		require.NoError(t, s.Append(ctx, append([]byte("during-"), r.Payload...)))
		return errors.New("keep")
	})
	require.NoError(t, err)
	assert.Equal(t, 6, res.Remaining)
	got := drainAll(t, s)
	want := append(numbered(3), []byte(`during-{"n":0}`), []byte(`during-{"n":1}`), []byte(`during-{"n":2}`))
	assert.Equal(t, want, payloadsOf(got), "failed records stay before records appended during the replay")
}

func TestStoreLimits(t *testing.T) {
	ctx := context.Background()
	path := storePath(t)
	s := openTestStore(t, path, Config{MaxPayloadBytes: 100, MaxBytes: 1000})
	err := s.Append(ctx, bytes.Repeat([]byte("s"), 101))
	require.ErrorIs(t, err, ErrTooLarge)
	assert.NotContains(t, err.Error(), "sss", "no payload bytes in errors")
	for err == nil || errors.Is(err, ErrTooLarge) {
		err = s.Append(ctx, bytes.Repeat([]byte("p"), 90))
	}
	require.ErrorIs(t, err, ErrFull)
	st := s.Stats()
	assert.EqualValues(t, 1, st.RejectedTooLarge)
	assert.EqualValues(t, 1, st.RejectedFull)
	assert.LessOrEqual(t, st.PendingBytes, int64(1000))
	kept := st.PendingRecords
	require.NoError(t, s.Close())

	// Reopen with a much smaller limit: nothing is dropped, appends refused.
	s = openTestStore(t, path, Config{MaxBytes: 300})
	assert.Equal(t, kept, s.Stats().PendingRecords)
	require.ErrorIs(t, s.Append(ctx, []byte("x")), ErrFull)
	assert.Len(t, drainAll(t, s), int(kept))
	require.NoError(t, s.Append(ctx, []byte(`1`)), "room again after the replay")
	require.ErrorIs(t, s.Append(ctx, bytes.Repeat([]byte("x"), 200)), ErrFull)
}

func TestStoreClosedAndCancelled(t *testing.T) {
	s, err := Open(storePath(t), Config{})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	require.ErrorIs(t, s.Append(ctx, []byte("x")), context.Canceled)
	require.NoError(t, s.Close())
	require.ErrorIs(t, s.Append(context.Background(), []byte("x")), ErrClosed)
	_, err = s.Replay(context.Background(), func(context.Context, Record) error { return nil })
	require.ErrorIs(t, err, ErrClosed)
}

func TestStoreDeadLetterAndRequeue(t *testing.T) {
	ctx := context.Background()
	path := storePath(t)
	s := openTestStore(t, path, Config{MaxAttempts: 2})
	appendAll(t, s, numbered(3)...)
	poison := func(_ context.Context, r Record) error {
		if bytes.Equal(r.Payload, []byte(`{"n":1}`)) {
			return errors.New("poison")
		}
		return errors.New("down")
	}
	res, err := s.Replay(ctx, poison)
	require.NoError(t, err)
	assert.Zero(t, res.DeadLettered)
	res, err = s.Replay(ctx, poison)
	require.NoError(t, err)
	assert.Equal(t, 3, res.DeadLettered, "attempt 2 reached the limit for all three")
	assert.Zero(t, res.Remaining)
	assert.EqualValues(t, 3, s.Stats().DeadLettered)

	var dead []Record
	require.NoError(t, ScanFile(s.DeadPath(), ScanConfig{}, func(e ScanEntry) error {
		require.Equal(t, ProblemNone, e.Problem)
		dead = append(dead, e.Record)
		return nil
	}))
	require.Len(t, dead, 3)
	assert.Equal(t, 2, dead[0].Attempts)

	appendAll(t, s, []byte(`"later"`))
	n, err := s.RequeueDead(ctx)
	require.NoError(t, err)
	assert.Equal(t, 3, n)
	_, err = os.Stat(s.DeadPath())
	assert.ErrorIs(t, err, os.ErrNotExist)
	got := drainAll(t, s)
	assert.Equal(t, append(numbered(3), []byte(`"later"`)), payloadsOf(got))
	for i, r := range got[:3] {
		assert.Zero(t, r.Attempts)
		assert.Equal(t, dead[i].ID, r.ID, "ID kept through dead-lettering")
	}
	n, err = s.RequeueDead(ctx)
	require.NoError(t, err)
	assert.Zero(t, n)
}

func TestStoreStatsOldest(t *testing.T) {
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { now = now.Add(time.Minute); return now }
	s := openTestStore(t, storePath(t), Config{now: clock})
	assert.True(t, s.Stats().OldestEnqueuedAt.IsZero())
	appendAll(t, s, numbered(3)...)
	first := time.Date(2025, 1, 1, 0, 1, 0, 0, time.UTC)
	st := s.Stats()
	assert.True(t, first.Equal(st.OldestEnqueuedAt))
	assert.Equal(t, 2*time.Minute, st.OldestAge(first.Add(2*time.Minute)))
	_, err := s.Replay(context.Background(), func(_ context.Context, r Record) error {
		if bytes.Equal(r.Payload, []byte(`{"n":0}`)) {
			return nil
		}
		return errors.New("no")
	})
	require.NoError(t, err)
	assert.True(t, first.Add(time.Minute).Equal(s.Stats().OldestEnqueuedAt))
	assert.Equal(t, "always", s.Stats().Sync.String())
}

func TestStoreSyncPolicies(t *testing.T) {
	for _, p := range []SyncPolicy{SyncAlways, SyncInterval, SyncNever} {
		t.Run(p.String(), func(t *testing.T) {
			path := storePath(t)
			s := openTestStore(t, path, Config{Sync: p, SyncInterval: time.Millisecond})
			var wg sync.WaitGroup
			for g := range 8 {
				wg.Go(func() {
					for i := range 50 {
						assert.NoError(t, s.Append(context.Background(), fmt.Appendf(nil, `[%d,%d]`, g, i)))
					}
				})
			}
			wg.Wait()
			require.NoError(t, s.Close())
			s = openTestStore(t, path, Config{})
			assert.Len(t, drainAll(t, s), 400)
		})
	}
}

func TestStoreRotationSealsSegments(t *testing.T) {
	path := storePath(t)
	s := openTestStore(t, path, Config{SegmentBytes: 512})
	appendAll(t, s, numbered(100)...)
	layout, err := Files(path)
	require.NoError(t, err)
	assert.Greater(t, len(layout.Segments), 3)
	require.NoError(t, s.Close())
	s = openTestStore(t, path, Config{SegmentBytes: 512})
	assert.EqualValues(t, 100, s.Stats().PendingRecords)
	assert.Equal(t, numbered(100), payloadsOf(failAll(t, s)))
	layout, err = Files(path)
	require.NoError(t, err)
	assert.Len(t, layout.Segments, 1, "a replay merges what it kept into one segment")
	assert.Equal(t, numbered(100), payloadsOf(drainAll(t, s)))
}

func TestStoreFilesLayout(t *testing.T) {
	path := storePath(t)
	s := openTestStore(t, path, Config{MaxAttempts: 1})
	appendAll(t, s, numbered(2)...)
	failAll(t, s)
	appendAll(t, s, numbered(1)...)
	l, err := Files(path)
	require.NoError(t, err)
	assert.Equal(t, path, l.Active)
	assert.Equal(t, path+".lock", l.Lock)
	assert.Equal(t, path+".dead", l.Dead)
	assert.Empty(t, l.Quarantine)
	assert.Empty(t, l.Segments)
}
