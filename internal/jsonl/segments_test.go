package jsonl

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// opLog records the file operations a store makes, through the fault seam.
type opLog struct {
	mu  sync.Mutex
	ops []string // "op name"
}

func (l *opLog) record(op, name string) error {
	l.mu.Lock()
	l.ops = append(l.ops, op+" "+name)
	l.mu.Unlock()
	return nil
}

func (l *opLog) list() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.ops)
}

// A record removed by a replay may have been spilled again, as a new
// record, by the handler it was delivered to. Under SyncNever and
// SyncInterval that copy is not yet on disk, so the commit fsyncs the
// active file before the rename and deletes that make the removal
// durable; otherwise a power loss could keep the removal and lose the
// copy.
func TestReplayCommitSyncsRespillsBeforeRemoving(t *testing.T) {
	for _, policy := range []SyncPolicy{SyncNever, SyncInterval} {
		t.Run(policy.String(), func(t *testing.T) {
			log := &opLog{}
			ffs := &faultFS{}
			path := filepath.Join(t.TempDir(), "p.jsonl")
			s := openTestStore(t, path, Config{fs: ffs, Sync: policy, SyncInterval: 1 << 40})
			for _, p := range []string{`"a"`, `"b"`, `"c"`} {
				require.NoError(t, s.Append(t.Context(), []byte(p)))
			}
			ffs.set(log.record)
			_, err := s.Replay(t.Context(), func(ctx context.Context, r Record) error {
				if string(r.Payload) == `"b"` {
					return s.Append(ctx, r.Payload) // the handler spilled it again
				}
				if string(r.Payload) == `"c"` {
					return errors.New("server down") // keeps a temp file, renamed at commit
				}
				return nil
			})
			require.NoError(t, err)
			ops := log.list()
			respill := slices.Index(ops, "write p.jsonl")
			require.GreaterOrEqual(t, respill, 0, "the re-spill writes the active file: %q", ops)
			synced := indexFrom(ops, respill, func(op string) bool { return op == "sync p.jsonl" })
			removal := indexFrom(ops, respill, func(op string) bool {
				return strings.HasPrefix(op, "rename ") || strings.HasPrefix(op, "remove ")
			})
			require.GreaterOrEqual(t, removal, 0, "the commit renames or removes: %q", ops)
			assert.True(t, synced >= 0 && synced < removal,
				"the active file must be fsynced after the re-spill and before the commit removes anything: %q", ops)
		})
	}
}

func indexFrom(ops []string, from int, match func(string) bool) int {
	for i := from; i < len(ops); i++ {
		if match(ops[i]) {
			return i
		}
	}
	return -1
}

// What a callback's error does to its record, durably (checked after a
// reopen): nil removes it, ErrDeadLetter dead-letters it at once, an
// error wrapping ErrNotAttempted keeps it exactly as it was, and any other
// error counts an attempt.
func TestReplayCallbackOutcomes(t *testing.T) {
	path := storePath(t)
	s := openTestStore(t, path, Config{})
	for _, p := range []string{`"sent"`, `"permanent"`, `"timeout"`, `"stopped"`, `"failed"`} {
		require.NoError(t, s.Append(t.Context(), []byte(p)))
	}
	res, err := s.Replay(t.Context(), func(_ context.Context, r Record) error {
		switch string(r.Payload) {
		case `"permanent"`:
			return fmt.Errorf("%w: 422", ErrDeadLetter)
		case `"timeout"`:
			return fmt.Errorf("%w: not settled in time", ErrNotAttempted)
		case `"stopped"`:
			return ErrNotAttempted
		case `"failed"`:
			return errors.New("500")
		}
		return nil
	})
	require.NoError(t, err)
	assert.Equal(t, ReplayResult{Republished: 1, DeadLettered: 1, Skipped: 2, Failed: 1, Remaining: 3}, res)
	require.NoError(t, s.Close())

	s = openTestStore(t, path, Config{})
	got := drainAll(t, s)
	require.Len(t, got, 3)
	attempts := map[string]int{}
	for _, r := range got {
		attempts[string(r.Payload)] = r.Attempts
	}
	assert.Equal(t, map[string]int{`"timeout"`: 0, `"stopped"`: 0, `"failed"`: 1}, attempts)
	dead, err := os.ReadFile(path + deadSuffix)
	require.NoError(t, err)
	assert.Contains(t, string(dead), `"p":"permanent"`)
	assert.Contains(t, string(dead), `"a":1`)
}

// A segment's name is never used twice, so a ledger entry can only ever
// describe the file it was written for: a replay that keeps records writes
// them under a new name (the same range at a higher rev) instead of over
// its source, a repair at open does the same, and the sequence numbers go
// on from the ledger after a restart that found no segment at all.
func TestSegmentNamesNeverReused(t *testing.T) {
	path := storePath(t)
	cfg := Config{SegmentBytes: 60}
	seen := map[string]bool{}
	var live []string
	// note checks the live segments after step: names not seen before,
	// or still there from before unless step rewrote every segment.
	note := func(step string, rewroteAll bool) {
		t.Helper()
		l, err := Files(path)
		require.NoError(t, err)
		for _, p := range l.Segments {
			name := filepath.Base(p)
			if rewroteAll || !slices.Contains(live, name) {
				require.False(t, seen[name], "%s: %s was used before", step, name)
			}
			seen[name] = true
		}
		live = live[:0]
		for _, p := range l.Segments {
			live = append(live, filepath.Base(p))
		}
	}
	s := openTestStore(t, path, cfg)
	for round := range 3 {
		appendAll(t, s, numbered(3)...)
		note("append", false)
		failAll(t, s) // every record kept: the output has the source's range
		note(fmt.Sprint("failed round ", round), true)
	}
	failAll(t, s) // one segment drained, every record kept: same range
	note("failed round with one segment", true)
	require.NoError(t, s.Close())

	// Damage a segment: open rewrites it under a new name.
	l, err := Files(path)
	require.NoError(t, err)
	require.NotEmpty(t, l.Segments)
	appendRaw(t, l.Segments[0], []byte("not json\n"))
	s = openTestStore(t, path, cfg)
	require.False(t, s.RepairReport().Clean())
	note("repair at open", false)
	assert.NotContains(t, live, filepath.Base(l.Segments[0]), "repaired under a new name")
	assert.Len(t, drainAll(t, s), 9)
	note("drained", true)
	require.NoError(t, s.Close())

	// Nothing left but the ledger: numbering goes on from it.
	s = openTestStore(t, path, cfg)
	appendAll(t, s, numbered(3)...)
	_, err = s.Replay(t.Context(), refuseAll)
	require.NoError(t, err)
	note("after a restart with no segment", true)
	assert.Len(t, drainAll(t, s), 3)
	assert.GreaterOrEqual(t, len(seen), 10)
}

// quarantineAfter makes a store at path whose one sealed segment holds n
// good records and then one damaged line, which only a replay finds (the
// ledger counts the segment, so open does not read it): its quarantine
// write comes after fn accepted the n records. It returns the store's
// fault seam.
func quarantineAfter(t *testing.T, path string, n int, cfg Config) (*Store, *faultFS) {
	t.Helper()
	s := openTestStore(t, path, Config{})
	appendAll(t, s, numbered(n+1)...)
	_, err := s.Replay(t.Context(), func(context.Context, Record) error { return ErrNotAttempted })
	require.NoError(t, err)
	require.NoError(t, s.Close())
	l, err := Files(path)
	require.NoError(t, err)
	require.Len(t, l.Segments, 1)
	flipByte(t, l.Segments[0], fmt.Sprintf(`"n":%d}`, n))
	ffs := &faultFS{}
	cfg.fs = ffs
	return openTestStore(t, path, cfg), ffs
}

// A replay whose quarantine write fails after fn accepted 10 records
// removes none of them (no checkpoint said so): its result says so, and
// the store's counters agree, at every retry. They used to report
// Republished 10, Remaining 0 each time, while the store held all 11.
func TestFailedReplayCountsOnlyWhatIsRemoved(t *testing.T) {
	path := storePath(t)
	s, ffs := quarantineAfter(t, path, 10, Config{checkpointEvery: time.Hour})
	ffs.set(failOn("write", func(name string) bool { return strings.HasSuffix(name, quarantineSuffix) }, errors.New("disk gone"), -1))
	for range 3 {
		accepted := 0
		res, err := s.Replay(t.Context(), func(context.Context, Record) error { accepted++; return nil })
		require.Error(t, err)
		assert.Equal(t, 10, accepted)
		assert.Equal(t, ReplayResult{Remaining: 11, Skipped: 11}, res, "nothing removed, nothing attempted")
		st := s.Stats()
		assert.Zero(t, st.Republished)
		assert.Zero(t, st.Quarantined)
		assert.EqualValues(t, 11, st.PendingRecords)
	}
	ffs.set(nil)
	require.NoError(t, s.Close())
	s = openTestStore(t, path, Config{})
	assert.EqualValues(t, 11, s.Stats().PendingRecords, "what the results said is pending")
}

// With checkpoints during the drain, a failed replay reports what they
// removed: the records below the last saved watermark, and no more. The
// store's counters and a reopen agree with it.
func TestFailedReplayCountsCheckpointedRecords(t *testing.T) {
	path := storePath(t)
	now := time.Unix(1_700_000_000, 0)
	clock := func() time.Time { now = now.Add(time.Second); return now }
	s, ffs := quarantineAfter(t, path, 10, Config{now: clock, checkpointEvery: 3 * time.Second})
	ffs.set(failOn("write", func(name string) bool { return strings.HasSuffix(name, quarantineSuffix) }, errors.New("disk gone"), -1))
	res, err := s.Replay(t.Context(), func(context.Context, Record) error { return nil })
	require.Error(t, err)
	assert.Greater(t, res.Republished, 0, "checkpoints saved some")
	assert.Less(t, res.Republished, 10, "not the records after the last checkpoint")
	assert.Equal(t, 11-res.Republished, res.Remaining)
	assert.Equal(t, res.Remaining, res.Skipped)
	st := s.Stats()
	assert.EqualValues(t, res.Republished, st.Republished)
	assert.EqualValues(t, res.Remaining, st.PendingRecords)
	ffs.set(nil)
	require.NoError(t, s.Close())

	s = openTestStore(t, path, Config{})
	assert.EqualValues(t, res.Remaining, s.Stats().PendingRecords, "durable: what the result said")
	got := payloadsOf(drainAll(t, s))
	assert.Equal(t, numbered(10)[res.Republished:], got, "the rest is delivered, the damaged line quarantined")
}

// A drain stopped in the middle (ctx cancelled after 4 records) reports
// exactly what its commit removed and what is pending, and the store and
// a reopen agree.
func TestStoppedReplayCountsAgree(t *testing.T) {
	path := storePath(t)
	s := openTestStore(t, path, Config{SegmentBytes: 200})
	appendAll(t, s, numbered(12)...)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	n := 0
	res, err := s.Replay(ctx, func(context.Context, Record) error {
		n++
		if n == 4 {
			cancel()
		}
		return nil
	})
	require.ErrorIs(t, err, context.Canceled)
	assert.Equal(t, 4, res.Republished)
	assert.Equal(t, 8, res.Remaining)
	st := s.Stats()
	assert.EqualValues(t, 4, st.Republished)
	assert.EqualValues(t, 8, st.PendingRecords)
	require.NoError(t, s.Close())
	s = openTestStore(t, path, Config{SegmentBytes: 200})
	assert.EqualValues(t, 8, s.Stats().PendingRecords)
	assert.Equal(t, numbered(12)[4:], payloadsOf(drainAll(t, s)))
}
