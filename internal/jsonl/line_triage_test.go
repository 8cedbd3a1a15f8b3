package jsonl

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The reader's limit holds the longest line any record can become: the
// longest ID it accepts, the most attempts, any time, either encoding.
func TestEncodedLineSizeCoversEveryRecord(t *testing.T) {
	id := strings.Repeat("i", maxIDLen)
	at := time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.FixedZone("", -14*3600))
	for i, payload := range [][]byte{
		nil,
		[]byte(`{"cmd":"ls"}`),
		[]byte("not json\r\n"),
		bytes.Repeat([]byte{0xff}, 1000),
		bytes.Repeat([]byte(`7`), 1000),
	} {
		rec := Record{ID: id, Payload: payload, EnqueuedAt: at, Attempts: math.MaxInt64}
		line := appendRecord(nil, rec)
		assert.LessOrEqual(t, len(line), encodedLineSize(len(payload)), "payload %d", i)
		assert.Equal(t, len(line), longestLine(rec), "payload %d", i)
		assert.True(t, fitsRewritten(rec, len(line)))
		assert.False(t, fitsRewritten(rec, len(line)-1))
	}
}

// Fault 4: a legacy line that cannot be stored inline (CRLF, spaces around
// the value) goes base64, a third longer. Every one up to the payload limit
// is delivered; a longer one used to be rewritten into a line the reader
// refused, and quarantined only at the next replay. It is quarantined at
// open, byte for byte, and counted.
func TestRecoveryLegacyLineOverTheLimitIsQuarantined(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sync-pending.jsonl")
	jsonString := func(n int) []byte { // a JSON string of n bytes, quotes included
		return append(append([]byte(`"`), bytes.Repeat([]byte("a"), n-2)...), '"')
	}
	small := []byte("  {\"cmd\": \"ls\"}  \r")                            // spaces and a CR around the value
	atLimit := append(jsonString(DefaultMaxPayloadBytes-1), '\r')         // exactly the payload limit
	over := append(jsonString(DefaultMaxPayloadBytes+(1<<20)), ' ', '\r') // base64 would pass the line limit
	require.Less(t, len(over), maxLineSize(0), "short enough to be read as a legacy line")
	require.Greater(t, encodedLineSize(len(over)), maxLineSize(0))
	after := []byte(`"after"`)
	content := bytes.Join([][]byte{small, atLimit, over, after, nil}, []byte("\n"))
	require.NoError(t, os.WriteFile(path, content, 0o600))

	s := openTestStore(t, path, Config{})
	rep := s.RepairReport()
	require.Len(t, rep.Files, 1)
	assert.Equal(t, 3, rep.Files[0].LegacyRewritten)
	assert.Equal(t, 1, rep.Files[0].Quarantined)
	assert.EqualValues(t, len(over)+1, rep.Files[0].QuarantinedBytes)
	assert.EqualValues(t, 1, s.Stats().Quarantined)
	q, err := os.ReadFile(path + quarantineSuffix)
	require.NoError(t, err)
	assert.True(t, bytes.Equal(append(over, '\n'), q), "the line as it was")

	// What was rewritten reads back whole: no line over the reader's limit.
	got := drainAll(t, s)
	require.Len(t, got, 3)
	assert.True(t, bytes.Equal(small, got[0].Payload))
	assert.True(t, bytes.Equal(atLimit, got[1].Payload), "a payload at the limit is delivered")
	assert.Equal(t, after, got[2].Payload)
	assert.EqualValues(t, 1, s.Stats().Quarantined, "nothing more at replay")
}

// Fault 5: a torn tail too long to hold (no newline, longer than the line
// limit) is a torn tail too: its bytes are counted in TornBytes.
func TestRecoveryTooLongTornTail(t *testing.T) {
	path := filepath.Join(t.TempDir(), "p.jsonl")
	recs := testRecords(1)
	tail := bytes.Repeat([]byte("T"), maxLineSize(0)+10)
	require.NoError(t, os.WriteFile(path, append(encodeLines(recs[0]), tail...), 0o600))
	s := openTestStore(t, path, Config{})
	rep := s.RepairReport()
	require.Len(t, rep.Files, 1)
	assert.EqualValues(t, len(tail), rep.Files[0].TornBytes)
	assert.Equal(t, 1, rep.Files[0].Quarantined)
	assert.EqualValues(t, len(tail)+1, rep.Files[0].QuarantinedBytes)
	assert.Len(t, drainAll(t, s), 1)
}
