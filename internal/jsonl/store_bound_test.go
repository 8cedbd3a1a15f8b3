package jsonl

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// storeDirBytes is what the store's files hold on disk, the lock aside.
func storeDirBytes(t *testing.T, path string) int64 {
	t.Helper()
	entries, err := os.ReadDir(filepath.Dir(path))
	require.NoError(t, err)
	var n int64
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), lockSuffix) || strings.HasSuffix(e.Name(), ledgerSuffix) {
			continue // bookkeeping, not records: MaxBytes bounds records
		}
		fi, err := e.Info()
		require.NoError(t, err)
		n += fi.Size()
	}
	return n
}

// livePending scans the pending files (active and live segments) as a
// reopen would count them.
func livePending(t *testing.T, path string) (records, bytes int64) {
	t.Helper()
	l, err := Files(path)
	require.NoError(t, err)
	for _, p := range append([]string{l.Active}, l.Segments...) {
		if p == "" {
			continue
		}
		require.NoError(t, ScanFile(p, ScanConfig{}, func(e ScanEntry) error {
			require.Equal(t, ProblemNone, e.Problem)
			records++
			bytes += e.Length
			return nil
		}))
	}
	return records, bytes
}

func fillUntilFull(t *testing.T, s *Store, tag string) (accepted [][]byte) {
	t.Helper()
	for i := 0; ; i++ {
		p := fmt.Appendf(nil, `{"round":%q,"n":%d}`, tag, i)
		err := s.Append(context.Background(), p)
		if errors.Is(err, ErrFull) {
			return accepted
		}
		require.NoError(t, err)
		accepted = append(accepted, p)
	}
}

// Fault 2: MaxBytes bounds pending records, dead letters and quarantine
// together. Rounds of fill-and-fail with MaxAttempts 1 used to move a full
// store's worth to the dead letters each time (9.9x MaxBytes after 10).
func TestMaxBytesBoundsDeadLetters(t *testing.T) {
	const limit = 4096
	ctx := context.Background()
	path := storePath(t)
	s := openTestStore(t, path, Config{MaxBytes: limit, MaxAttempts: 1})
	var accepted [][]byte
	for round := range 10 {
		accepted = append(accepted, fillUntilFull(t, s, fmt.Sprint(round))...)
		_, err := s.Replay(ctx, refuseAll)
		require.NoError(t, err)
		assert.LessOrEqual(t, storeDirBytes(t, path), int64(limit), "round %d", round)
	}
	assert.Positive(t, s.Stats().RejectedFull)
	err := s.Append(ctx, []byte(`"one more"`))
	require.ErrorIs(t, err, ErrFull, "the dead letters fill the bound")

	// Moving them back never needs room the store does not have.
	n, err := s.RequeueDead(ctx)
	require.NoError(t, err)
	assert.Equal(t, len(accepted), n)
	assert.LessOrEqual(t, storeDirBytes(t, path), int64(limit))
	assert.Equal(t, accepted, payloadsOf(drainAll(t, s)), "nothing lost")
	require.NoError(t, s.Append(ctx, []byte(`"room again"`)))
}

// A store over its bound (here a smaller MaxBytes at reopen) requeues only
// what fits in pending, and reports the rest, which stays dead-lettered.
func TestRequeueDeadMovesWhatFits(t *testing.T) {
	ctx := context.Background()
	path := storePath(t)
	s := openTestStore(t, path, Config{MaxBytes: -1, MaxAttempts: 1})
	appendAll(t, s, numbered(10)...)
	_, err := s.Replay(ctx, refuseAll)
	require.NoError(t, err)
	appendAll(t, s, []byte(`"pending"`))
	pending := s.Stats().PendingBytes
	dead, _ := readDead(t, path)
	line := int64(len(appendRecord(nil, Record{ID: dead[0].ID, Payload: dead[0].Payload, EnqueuedAt: dead[0].EnqueuedAt})))
	require.NoError(t, s.Close())

	limit := pending + 3*line + line/2
	s = openTestStore(t, path, Config{MaxBytes: limit})
	n, err := s.RequeueDead(ctx)
	require.ErrorIs(t, err, ErrFull)
	assert.Contains(t, err.Error(), "7 dead letters stay")
	assert.Equal(t, 3, n)
	assert.LessOrEqual(t, s.Stats().PendingBytes, limit)
	left, bad := readDead(t, path)
	assert.Zero(t, bad)
	require.Len(t, left, 7)
	assert.Equal(t, dead[3:], left, "the oldest moved, the others stay as they were")
	require.NoError(t, s.Close())

	// Nothing moved twice, nothing lost.
	s = openTestStore(t, path, Config{MaxBytes: -1})
	n, err = s.RequeueDead(ctx)
	require.NoError(t, err)
	assert.Equal(t, 7, n)
	got := payloadsOf(drainAll(t, s))
	assert.ElementsMatch(t, append(numbered(10), []byte(`"pending"`)), got)
}

// Fault 2b: an EIO on the directory fsync after RequeueDead's rename. It
// used to report 0 moved, leave the records uncounted and the dead-letter
// file in place, so the next call moved them again.
func TestRequeueDeadCountsWhatItRenamed(t *testing.T) {
	ctx := context.Background()
	ffs := &faultFS{}
	path := filepath.Join(t.TempDir(), "p.jsonl")
	s := openTestStore(t, path, Config{fs: ffs, MaxAttempts: 1})
	appendAll(t, s, numbered(10)...)
	_, err := s.Replay(ctx, refuseAll)
	require.NoError(t, err)
	require.Zero(t, s.Stats().PendingRecords)

	ffs.set(failOn("syncdir", anyFile, syscall.EIO, 1))
	n, err := s.RequeueDead(ctx)
	require.ErrorIs(t, err, syscall.EIO)
	assert.Equal(t, 10, n, "the records are pending: the rename happened")
	records, bytes := livePending(t, path)
	assert.EqualValues(t, 10, records)
	assert.Equal(t, records, s.Stats().PendingRecords)
	assert.Equal(t, bytes, s.Stats().PendingBytes)

	ffs.set(nil)
	n, err = s.RequeueDead(ctx)
	require.NoError(t, err)
	assert.Zero(t, n, "not moved twice")
	_, err = os.Stat(path + deadSuffix)
	assert.ErrorIs(t, err, os.ErrNotExist)
	assert.Equal(t, numbered(10), payloadsOf(drainAll(t, s)))
}

// Fault 2c: an EIO on the directory fsync after a replay's commit rename.
// The counters used to keep the drained segments' records (so appends got
// ErrFull early); they must describe the files: the new segment, not the
// segments it supersedes.
func TestReplayCountsWhatItRenamed(t *testing.T) {
	ctx := context.Background()
	ffs := &faultFS{}
	path := filepath.Join(t.TempDir(), "p.jsonl")
	// One segment per record, so the commit supersedes six segments; room
	// for six records exactly.
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	line := len(appendRecord(nil, Record{ID: strings.Repeat("x", 36), Payload: []byte(`{"n":0}`), EnqueuedAt: at}))
	s := openTestStore(t, path, Config{fs: ffs, SegmentBytes: 1, MaxBytes: int64(6 * line),
		now: func() time.Time { return at }})
	appendAll(t, s, numbered(6)...)
	l, err := Files(path)
	require.NoError(t, err)
	require.Len(t, l.Segments, 6)

	ffs.set(failOn("syncdir", anyFile, syscall.EIO, 1))
	res, err := s.Replay(ctx, func(_ context.Context, r Record) error {
		if strings.ContainsAny(string(r.Payload), "135") {
			return nil
		}
		return errors.New("keep")
	})
	require.NoError(t, err, "the replay is done; only its durability is in doubt")
	assert.Equal(t, 3, res.Republished)
	assert.Equal(t, 3, res.Remaining)
	ffs.set(nil)
	l, err = Files(path)
	require.NoError(t, err)
	assert.Len(t, l.Superseded, 6, "kept until a directory fsync has made the rename durable")
	records, bytes := livePending(t, path)
	st := s.Stats()
	assert.EqualValues(t, 3, records)
	assert.Equal(t, records, st.PendingRecords)
	assert.Equal(t, bytes, st.PendingBytes)
	appendAll(t, s, numbered(3)...) // room for what the replay removed

	// The next replay removes the superseded segments.
	assert.Len(t, failAll(t, s), 6)
	l, err = Files(path)
	require.NoError(t, err)
	assert.Empty(t, l.Superseded)
	require.NoError(t, s.Close())
	s = openTestStore(t, path, Config{})
	assert.True(t, s.RepairReport().Clean(), "%+v", s.RepairReport())
	want := [][]byte{[]byte(`{"n":0}`), []byte(`{"n":2}`), []byte(`{"n":4}`)}
	assert.Equal(t, append(want, numbered(3)...), payloadsOf(drainAll(t, s)))
}
