package jsonl

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/syncbreaker/syncbreaker/internal/fsx"
)

// flipByte changes one payload byte in the middle of the file at path,
// keeping its size: damage that only a line-by-line check finds.
func flipByte(t *testing.T, path string, payload string) {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	i := bytes.Index(data, []byte(payload))
	require.GreaterOrEqual(t, i, 0, "payload %s in %s", payload, filepath.Base(path))
	data[i+1] ^= 0x01
	require.NoError(t, os.WriteFile(path, data, 0o600))
}

// Opening trusts the counts the ledger holds for sealed segments and for
// the active file as Close left it: it does not read them line by line
// (damage that keeps a file's size goes unnoticed at open) and a replay
// checks every line instead, quarantining what is damaged.
func TestOpenTrustsLedgerCounts(t *testing.T) {
	path := storePath(t)
	s := openTestStore(t, path, Config{SegmentBytes: 300})
	var want [][]byte
	for i := range 12 {
		p := fmt.Appendf(nil, `{"n":%d,"pad":"xxxxxxxxxxxxxxxx"}`, i)
		want = append(want, p)
		require.NoError(t, s.Append(t.Context(), p))
	}
	require.NoError(t, s.Close())
	l, err := Files(path)
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(l.Segments), 2, "appends sealed segments")
	flipByte(t, l.Segments[0], `"n":1,`)

	s = openTestStore(t, path, Config{SegmentBytes: 300})
	assert.True(t, s.RepairReport().Clean(), "nothing was read line by line at open: %+v", s.RepairReport())
	assert.EqualValues(t, 12, s.Stats().PendingRecords, "counted from the ledger")

	got := drainAll(t, s)
	assert.Equal(t, append(want[:1:1], want[2:]...), payloadsOf(got), "the damaged record is quarantined by the replay")
	st := s.Stats()
	assert.EqualValues(t, 1, st.Quarantined)
	assert.Zero(t, st.PendingRecords)
}

// After Close, opening reads only what was appended after the ledger's
// entry for the active file: appended records are counted, a torn tail
// makes it read (and repair) the whole file, and a file that no longer
// starts with the entry's first record is read whole.
func TestOpenReadsOnlyTheActiveTail(t *testing.T) {
	line := func(n int) []byte {
		return appendRecord(nil, Record{ID: fmt.Sprintf("0190a1b2-c3d4-7e5f-8a9b-%012d", n), Payload: fmt.Appendf(nil, `{"raw":%d}`, n), EnqueuedAt: time.Unix(int64(n), 0).UTC()})
	}
	tests := []struct {
		name       string
		tail       func(t *testing.T, path string)
		want       int64
		repaired   bool
		quarantine bool
	}{
		{name: "records appended after Close", tail: func(t *testing.T, path string) {
			appendRaw(t, path, line(1), line(2))
		}, want: 5},
		{name: "a torn tail", tail: func(t *testing.T, path string) {
			appendRaw(t, path, line(1), line(2)[:20])
		}, want: 4, repaired: true, quarantine: true},
		{name: "another file", tail: func(t *testing.T, path string) {
			require.NoError(t, os.WriteFile(path, append(line(7), line(8)...), 0o600))
		}, want: 2, repaired: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := storePath(t)
			s := openTestStore(t, path, Config{})
			appendAll(t, s, numbered(3)...)
			require.NoError(t, s.Close())
			_, err := os.Stat(path + ledgerSuffix)
			require.NoError(t, err, "Close wrote the active file's entry")
			tt.tail(t, path)

			s = openTestStore(t, path, Config{})
			assert.Equal(t, tt.want, s.Stats().PendingRecords)
			assert.Equal(t, !tt.repaired, s.RepairReport().Clean(), "%+v", s.RepairReport())
			got := drainAll(t, s)
			assert.Len(t, got, int(tt.want))
			assert.Equal(t, tt.quarantine, s.Stats().Quarantined > 0)
		})
	}
}

// Without a Close, as after a kill -9, the ledger still holds an entry for
// the active file, written after an fsync once the file grew
// activeEntryEvery past the last one: opening counts the records it covers
// without reading them (damage there goes unnoticed at open, as in
// TestOpenTrustsLedgerCounts) and reads only what follows. Under SyncNever
// nothing is fsynced, so there is no entry and the file is read whole.
func TestOpenAfterKillReadsOnlyTheActiveTail(t *testing.T) {
	for _, policy := range []SyncPolicy{SyncAlways, SyncNever} {
		t.Run(policy.String(), func(t *testing.T) {
			path := storePath(t)
			cfg := Config{Sync: policy, activeEntryEvery: 1}
			s := openTestStore(t, path, cfg)
			appendAll(t, s, numbered(5)...)
			// The files as a kill -9 would leave them: copied before Close.
			killed := storePath(t)
			for _, suffix := range []string{"", ledgerSuffix} {
				data, err := os.ReadFile(path + suffix)
				if policy == SyncNever && suffix == ledgerSuffix {
					require.ErrorIs(t, err, os.ErrNotExist, "nothing fsynced, no entry")
					continue
				}
				require.NoError(t, err)
				require.NoError(t, os.WriteFile(killed+suffix, data, 0o600))
			}
			require.NoError(t, s.Close())
			flipByte(t, killed, `"n":1}`)
			appendRaw(t, killed, appendRecord(nil, Record{ID: "0190a1b2-c3d4-7e5f-8a9b-000000000009", Payload: []byte(`{"n":9}`), EnqueuedAt: time.Now()}))

			s = openTestStore(t, killed, cfg)
			if policy == SyncNever {
				assert.False(t, s.RepairReport().Clean(), "read whole: the damage is found at open")
				assert.EqualValues(t, 5, s.Stats().PendingRecords)
				return
			}
			assert.True(t, s.RepairReport().Clean(), "the entry's records were not read at open: %+v", s.RepairReport())
			assert.EqualValues(t, 6, s.Stats().PendingRecords, "5 from the entry, 1 read after it")
			got := drainAll(t, s)
			assert.Len(t, got, 5, "the replay checks every line and quarantines the damaged one")
			assert.EqualValues(t, 1, s.Stats().Quarantined)
		})
	}
}

func appendRaw(t *testing.T, path string, lines ...[]byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	require.NoError(t, err)
	for _, l := range lines {
		_, err := f.Write(l)
		require.NoError(t, err)
	}
	require.NoError(t, f.Close())
}

// A replay that fails after some checkpoints (here the dead-letter file
// cannot be written, at record 12) keeps what they settled: the next open
// counts only what is left, and the next drain starts at the watermark, so
// the records before it are not delivered again.
func TestReplayResumesFromCheckpoint(t *testing.T) {
	path := storePath(t)
	now := time.Unix(1_700_000_000, 0)
	clock := func() time.Time { now = now.Add(time.Second); return now }
	ffs := &faultFS{}
	s := openTestStore(t, path, Config{fs: ffs, now: clock, checkpointEvery: 3 * time.Second})
	want := numbered(20)
	appendAll(t, s, want...)

	ffs.set(failOn("write", func(name string) bool { return filepath.Ext(name) == ".dead" }, errors.New("disk gone"), -1))
	_, err := s.Replay(t.Context(), func(_ context.Context, r Record) error {
		if bytes.Equal(r.Payload, want[12]) {
			return fmt.Errorf("%w: refused", ErrDeadLetter) // its write fails the replay
		}
		return nil
	})
	require.Error(t, err, "the dead letter could not be written")
	ffs.set(nil)
	require.NoError(t, s.Close())

	s = openTestStore(t, path, Config{})
	settled := 20 - int(s.Stats().PendingRecords)
	assert.GreaterOrEqual(t, settled, 9, "checkpoints every few records up to the refused one")
	assert.LessOrEqual(t, settled, 12, "never past the refused record")
	got := payloadsOf(drainAll(t, s))
	assert.Equal(t, want[settled:], got, "the drain resumes at the watermark, nothing lost")
}

// worstLedger is the largest ledger a store with this base name and this
// many marks can write: every field at its longest, every name byte one
// that json.Marshal escapes, every tombstone a copy.
func worstLedger(base string, marks int) ledgerFile {
	l := ledgerFile{Version: ledgerVersion, Next: math.MaxUint64, MaxLine: math.MinInt64, Segments: map[string]mark{}}
	at := time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.FixedZone("", -(23*3600+59*60)))
	for i := range marks {
		name := fmt.Sprintf("%s%s%020d-%020d.%020d", base, segInfix, uint64(math.MaxUint64)-uint64(i), uint64(math.MaxUint64), uint64(math.MaxUint64))
		l.Segments[name] = mark{Size: math.MinInt64, First: strings.Repeat("f", maxIDLen), Off: math.MinInt64,
			Lines: math.MinInt64, Records: math.MinInt64, FirstAt: at}
	}
	for i := range maxTombstones {
		id := fmt.Sprintf("%0*d", maxIDLen, i)
		l.Settled = append(l.Settled, id)
		l.Copies = append(l.Copies, id)
	}
	return l
}

// The ledger's largest size is what ledgerSizeBound states, and the bound
// is close to what the worst case writes.
func TestLedgerSizeBound(t *testing.T) {
	for _, tc := range []struct {
		base  string
		marks int
	}{{"sync-pending.jsonl", 0}, {"sync-pending.jsonl", 1000}, {strings.Repeat("<", 200), 1000}, {strings.Repeat("\x01", 255), 20}} {
		data, err := json.Marshal(worstLedger(tc.base, tc.marks))
		require.NoError(t, err)
		name, err := json.Marshal(tc.base)
		require.NoError(t, err)
		bound := ledgerSizeBound(len(name)-2, tc.marks)
		assert.LessOrEqual(t, int64(len(data)), bound, "base %q, %d marks", tc.base[:1], tc.marks)
		if strings.Contains(tc.base, "<") {
			assert.Greater(t, int64(len(data)), bound*9/10, "the bound is tight for names json escapes")
		}
	}
	// What ledger.go states.
	perMark := ledgerSizeBound(len("sync-pending.jsonl"), 1) - ledgerSizeBound(len("sync-pending.jsonl"), 0)
	assert.EqualValues(t, 349, perMark)
	assert.EqualValues(t, 5718365, ledgerSizeBound(len("sync-pending.jsonl"), DefaultMaxBytes/(64<<10)+1)-ledgerSizeBound(0, 0))
	assert.EqualValues(t, 128+2*maxTombstones*(maxIDLen+3), ledgerSizeBound(0, 0))
}

// A ledger over the 1 MiB the reader used to stop at is read whole: its
// tombstones hold, and a record settled late is not delivered again.
func TestLedgerOverOneMiBIsRead(t *testing.T) {
	path := storePath(t)
	s := openTestStore(t, path, Config{})
	appendAll(t, s, numbered(3)...)
	var ids []string
	_, err := s.Replay(t.Context(), func(_ context.Context, r Record) error {
		ids = append(ids, r.ID)
		return ErrNotAttempted
	})
	require.NoError(t, err)
	s.SettleLate(ids[1])
	require.NoError(t, s.Close())

	// Grow it past 1 MiB with marks of segments that are gone, as a
	// store of many segments has marks of ones that are there.
	l, err := loadLedger(s.fs, path+ledgerSuffix)
	require.NoError(t, err)
	big := worstLedger(filepath.Base(path), 6000)
	maps.Copy(l.Segments, big.Segments)
	data, err := json.Marshal(l)
	require.NoError(t, err)
	require.Greater(t, len(data), 1<<20)
	require.NoError(t, os.WriteFile(path+ledgerSuffix, data, 0o600))
	got, err := loadLedger(s.fs, path+ledgerSuffix)
	require.NoError(t, err)
	assert.Equal(t, l, got)

	var logs syncBuffer
	s = openTestStore(t, path, Config{Logger: logs.logger()})
	assert.NotContains(t, logs.String(), "ledger unreadable")
	var delivered []string
	_, err = s.Replay(t.Context(), func(_ context.Context, r Record) error {
		delivered = append(delivered, string(r.Payload))
		return nil
	})
	require.NoError(t, err)
	assert.Equal(t, []string{`{"n":0}`, `{"n":2}`}, delivered, "the tombstone held")
	require.NoError(t, s.Close())
	fi, err := os.Stat(path + ledgerSuffix)
	require.NoError(t, err)
	assert.Less(t, fi.Size(), int64(1<<10), "marks of segments that are gone are dropped at open")
}

// SettleLate and Discard take only IDs a record can have: the tombstones,
// and so the ledger, stay within ledgerSizeBound whatever a caller passes.
func TestTombstonesTakeOnlyValidIDs(t *testing.T) {
	s := openTestStore(t, storePath(t), Config{})
	s.SettleLate(strings.Repeat("a", maxIDLen+1))
	s.Discard(`"quoted"`)
	s.SettleLate("")
	assert.Zero(t, s.tombCount.Load())
	s.SettleLate(strings.Repeat("a", maxIDLen))
	assert.EqualValues(t, 1, s.tombCount.Load())
}

// readCountFS counts the bytes read from each file, by base name.
type readCountFS struct {
	fsx.OS
	mu    sync.Mutex
	bytes map[string]int64
}

func (f *readCountFS) OpenFile(name string, flag int, perm os.FileMode) (fsx.File, error) {
	file, err := f.OS.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return &readCountFile{File: file, fs: f}, nil
}

func (f *readCountFS) read(name string) int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.bytes[name]
}

type readCountFile struct {
	fsx.File
	fs *readCountFS
}

func (f *readCountFile) Read(p []byte) (int, error) {
	n, err := f.File.Read(p)
	f.fs.mu.Lock()
	if f.fs.bytes == nil {
		f.fs.bytes = map[string]int64{}
	}
	f.fs.bytes[filepath.Base(f.Name())] += int64(n)
	f.fs.mu.Unlock()
	return n, err
}

// Opening after a clean Close reads no sealed segment past its first
// bytes (the check that it is the file the ledger describes) under every
// policy: under SyncNever, Close fsyncs the segments its seals did not and
// records their counts. It used to scan them all (262 ms for 300,000
// records, against 1 ms under SyncInterval).
func TestOpenAfterCleanCloseReadsNoSegment(t *testing.T) {
	for _, sync := range []SyncPolicy{SyncAlways, SyncInterval, SyncNever} {
		t.Run(sync.String(), func(t *testing.T) {
			path := storePath(t)
			cfg := Config{Sync: sync, SegmentBytes: 2000}
			s := openTestStore(t, path, cfg)
			appendAll(t, s, numbered(200)...)
			require.NoError(t, s.Close())
			l, err := Files(path)
			require.NoError(t, err)
			require.Greater(t, len(l.Segments), 5)

			rfs := &readCountFS{}
			cfg.fs = rfs
			s = openTestStore(t, path, cfg)
			assert.True(t, s.RepairReport().Clean())
			assert.EqualValues(t, 200, s.Stats().PendingRecords)
			for i, seg := range l.Segments {
				limit := int64(128) // readFirstID's head
				if i == 0 {
					limit += 4096 // the head record's time: one buffered read
				}
				assert.LessOrEqual(t, rfs.read(filepath.Base(seg)), limit, "%s read at open", filepath.Base(seg))
			}
			assert.Equal(t, numbered(200), payloadsOf(drainAll(t, s)))
		})
	}
}
