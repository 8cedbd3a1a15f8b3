package jsonl

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// syncBuffer is a log sink safe for the store's goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *syncBuffer) logger() *slog.Logger { return slog.New(slog.NewTextHandler(b, nil)) }

// setLedgerNext rewrites the ledger of the store at path with next as its
// sequence counter, as damage or a hand edit could.
func setLedgerNext(t *testing.T, path string, next uint64) {
	t.Helper()
	data, err := os.ReadFile(path + ledgerSuffix)
	require.NoError(t, err)
	var l ledgerFile
	require.NoError(t, json.Unmarshal(data, &l))
	l.Next = next
	data, err = json.Marshal(l)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(path+ledgerSuffix, data, 0o600))
}

// A ledger whose counter is at 2^64-1 used to wrap: the seal took
// 2^64-1, the commit's rewrite rev 0, a name the listing cannot parse, and
// its records were no longer counted or replayed. Now the counter is
// ignored past its range, and every name the store writes parses.
func TestSeqCounterAtMaximumDoesNotWrap(t *testing.T) {
	path := storePath(t)
	s := openTestStore(t, path, Config{})
	appendAll(t, s, numbered(4)...)
	require.NoError(t, s.Close())
	setLedgerNext(t, path, math.MaxUint64)

	var logs syncBuffer
	s = openTestStore(t, path, Config{Logger: logs.logger()})
	assert.Contains(t, logs.String(), "sequence counter is beyond its range")
	appendAll(t, s, numbered(6)[4:]...)
	// Keep every other record: the commit rewrites the segment under a
	// fresh rev.
	i := 0
	res, err := s.Replay(t.Context(), func(context.Context, Record) error {
		i++
		if i%2 == 0 {
			return errors.New("refused")
		}
		return nil
	})
	require.NoError(t, err)
	assert.Equal(t, 3, res.Republished)
	assert.Equal(t, 3, res.Remaining)
	require.NoError(t, s.Close())

	l, err := Files(path)
	require.NoError(t, err)
	assert.Empty(t, l.Unrecognized, "every name the store wrote parses")
	require.Len(t, l.Segments, 1)
	s = openTestStore(t, path, Config{})
	assert.EqualValues(t, 3, s.Stats().PendingRecords)
	got := drainAll(t, s)
	assert.Equal(t, [][]byte{[]byte(`{"n":1}`), []byte(`{"n":3}`), []byte(`{"n":5}`)}, payloadsOf(got))
}

// A counter at its end refuses to seal rather than wrap: the replay fails,
// every record stays pending and in the active file, and appends go on.
// A reopen numbers on from the files' names.
func TestSeqCounterExhaustedRefusesToSeal(t *testing.T) {
	path := storePath(t)
	s := openTestStore(t, path, Config{})
	appendAll(t, s, numbered(3)...)
	s.nextSeq.Store(maxSeq)
	called := 0
	_, err := s.Replay(t.Context(), func(context.Context, Record) error { called++; return nil })
	require.ErrorIs(t, err, errSeqExhausted)
	assert.Zero(t, called)
	assert.EqualValues(t, 3, s.Stats().PendingRecords)
	appendAll(t, s, numbered(4)[3:]...)
	require.NoError(t, s.Close())

	l, err := Files(path)
	require.NoError(t, err)
	assert.Empty(t, l.Segments, "nothing sealed")
	var logs syncBuffer
	s = openTestStore(t, path, Config{Logger: logs.logger()})
	assert.Contains(t, logs.String(), "sequence counter is beyond its range")
	assert.Len(t, drainAll(t, s), 4)
}

// A segment name at the counter's end leaves it exhausted at open instead
// of wrapping to 0.
func TestSeqStartsPastEveryName(t *testing.T) {
	s := &Store{log: slog.New(slog.DiscardHandler)}
	segs := []segment{{lo: 3, hi: 3}, {lo: 1, hi: 7, rev: 9}}
	assert.EqualValues(t, 10, s.startSeq(ledgerFile{Next: 2}, segs))
	assert.EqualValues(t, 12, s.startSeq(ledgerFile{Next: 12}, segs))
	names := map[string]mark{"p" + segInfix + "0000000000000001-0000000000000001.0000000000000040": {}}
	assert.EqualValues(t, 41, s.startSeq(ledgerFile{Segments: names}, segs), "a name the ledger holds is never given out again")
	assert.EqualValues(t, 10, s.startSeq(ledgerFile{Next: math.MaxUint64}, segs))
	assert.EqualValues(t, uint64(maxSeq), s.startSeq(ledgerFile{}, []segment{{lo: math.MaxUint64, hi: math.MaxUint64}}))
}

// A file named like a segment that is not one is never read, and never
// passed over in silence: Files lists it and opening warns.
func TestLookalikeSegmentIsReported(t *testing.T) {
	path := storePath(t)
	s := openTestStore(t, path, Config{})
	appendAll(t, s, numbered(2)...)
	require.NoError(t, s.Close())
	line := appendRecord(nil, Record{ID: "x", Payload: []byte(`{"n":9}`)})
	lookalikes := []string{
		path + segInfix + "0000000000000001-0000000000000001.0", // rev 0: what a wrapped counter wrote
		path + segInfix + "backup",
		path + segInfix + "0000000000000002-0000000000000001",
		path + segInfix + "18446744073709551615-18446744073709551615", // past maxSeq
	}
	for _, p := range lookalikes {
		require.NoError(t, os.WriteFile(p, line, 0o600))
	}
	require.NoError(t, os.Mkdir(path+segInfix+"0000000000000005-0000000000000005", 0o700))
	lookalikes = append(lookalikes, path+segInfix+"0000000000000005-0000000000000005")

	l, err := Files(path)
	require.NoError(t, err)
	assert.ElementsMatch(t, lookalikes, l.Unrecognized)
	assert.Empty(t, l.Segments)

	var logs syncBuffer
	s = openTestStore(t, path, Config{Logger: logs.logger()})
	for _, p := range lookalikes {
		assert.Contains(t, logs.String(), "file="+filepath.Base(p), "warned about")
	}
	assert.Equal(t, len(lookalikes), strings.Count(logs.String(), "named like a store segment"))
	assert.EqualValues(t, 2, s.Stats().PendingRecords, "their lines are not counted")
	for _, p := range lookalikes {
		_, err := os.Lstat(p)
		assert.NoError(t, err, "left alone")
	}
}
