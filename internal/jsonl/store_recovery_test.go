package jsonl

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func encodeLines(recs ...Record) []byte {
	var b []byte
	for _, r := range recs {
		b = appendRecord(b, r)
	}
	return b
}

func testRecords(n int) []Record {
	recs := make([]Record, n)
	for i := range recs {
		p := fmt.Appendf(nil, `{"n":%d}`, i)
		if i%2 == 1 {
			p = fmt.Appendf(nil, "raw %d\nwith newline", i) // base64 form
		}
		recs[i] = Record{ID: fmt.Sprintf("id-%03d", i), Payload: p, EnqueuedAt: time.Unix(int64(1000+i), 0)}
	}
	return recs
}

func TestRecoveryTornTailSweep(t *testing.T) {
	recs := testRecords(6)
	data := encodeLines(recs...)
	// Offsets where each record's line ends (newline included).
	var ends []int
	for i := range recs {
		ends = append(ends, len(encodeLines(recs[:i+1]...)))
	}
	from := ends[2] // sweep every cut inside the last three records
	for cut := from; cut <= len(data); cut++ {
		path := filepath.Join(t.TempDir(), "p.jsonl")
		require.NoError(t, os.WriteFile(path, data[:cut], 0o600))
		s, err := Open(path, Config{})
		require.NoError(t, err, "cut %d", cut)
		whole := 0
		for whole < len(ends) && ends[whole] <= cut {
			whole++
		}
		got := drainAll(t, s)
		require.Len(t, got, whole, "cut %d", cut)
		for i, r := range got {
			require.Equal(t, recs[i].ID, r.ID)
			require.True(t, bytes.Equal(recs[i].Payload, r.Payload))
		}
		rep := s.RepairReport()
		if cut == ends[whole-1] {
			assert.True(t, rep.Clean(), "cut %d on a boundary needs no repair", cut)
		} else {
			require.Len(t, rep.Files, 1, "cut %d", cut)
			assert.EqualValues(t, cut-ends[whole-1], rep.Files[0].TornBytes)
			assert.Equal(t, 1, rep.Files[0].Quarantined)
			q, err := os.ReadFile(path + ".quarantine")
			require.NoError(t, err)
			assert.Equal(t, append(bytes.Clone(data[ends[whole-1]:cut]), '\n'), q, "torn bytes kept, not deleted")
		}
		require.NoError(t, s.Close())
	}
}

func TestRecoveryQuarantinesDamagedLines(t *testing.T) {
	recs := testRecords(4)
	good := func(i int) []byte { return encodeLines(recs[i]) }
	flipped := good(1)
	flipped[20] ^= 0x04
	v2 := bytes.Replace(good(1), []byte(`{"_v":1,`), []byte(`{"_v":2,`), 1)
	long := append(append([]byte(`"`), bytes.Repeat([]byte("L"), encodedLineSize(DefaultMaxPayloadBytes)+10)...), '"', '\n')
	tests := []struct {
		name string
		bad  []byte
		tail bool // bad line is the file's end
	}{
		{"flipped byte", flipped, false},
		{"invalid json", []byte("{\"_v\":1,\"id\":\n"), false},
		{"not json", []byte("echo hi\n"), false},
		{"unknown version", v2, false},
		{"nul run", append(bytes.Repeat([]byte{0}, 4096), '\n'), false},
		{"nul run tail without newline", bytes.Repeat([]byte{0}, 4096), true},
		{"line over the maximum", long, false},
		{"missing trailing newline", good(1)[:len(good(1))-1], true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "p.jsonl")
			content := append(bytes.Clone(good(0)), tt.bad...)
			want := []Record{recs[0]}
			if !tt.tail {
				content = append(content, good(2)...)
				content = append(content, good(3)...)
				want = append(want, recs[2], recs[3])
			}
			require.NoError(t, os.WriteFile(path, content, 0o600))
			// Damage in a sealed segment is handled the same way.
			seg := segmentPath(path, 1, 1)
			require.NoError(t, os.WriteFile(seg, content, 0o600))

			s := openTestStore(t, path, Config{})
			rep := s.RepairReport()
			require.Len(t, rep.Files, 2)
			for _, f := range rep.Files {
				assert.Equal(t, 1, f.Quarantined)
				assert.EqualValues(t, len(tt.bad)+btoi(tt.tail), f.QuarantinedBytes)
			}
			assert.EqualValues(t, 2, s.Stats().Quarantined)
			got := drainAll(t, s)
			require.Len(t, got, 2*len(want))
			for i, r := range got {
				assert.Equal(t, want[i%len(want)].ID, r.ID)
			}
			q, err := os.ReadFile(path + ".quarantine")
			require.NoError(t, err)
			assert.Equal(t, 2*(len(tt.bad)+btoi(tt.tail)), len(q))

			// Quarantine lines are reported by the scanner, never as records.
			problems := 0
			require.NoError(t, ScanFile(path+".quarantine", ScanConfig{}, func(e ScanEntry) error {
				if e.Problem != ProblemNone {
					problems++
				}
				return nil
			}))
			if tt.name == "missing trailing newline" {
				assert.Zero(t, problems, "the quarantined bytes are a whole record, kept for pendingctl")
			} else {
				assert.Equal(t, 2, problems)
			}
		})
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

func TestRecoveryLegacyLines(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sync-pending.jsonl")
	legacy := "{\"data\":{\"cmd\":\"ls\"}}\n[1,2,3]\n\"str\"\n{\"data\":{\"cmd\":\"ls\"}}\n"
	require.NoError(t, os.WriteFile(path, []byte(legacy), 0o644))

	var scanned []Record
	require.NoError(t, ScanFile(path, ScanConfig{}, func(e ScanEntry) error {
		require.True(t, e.Legacy)
		e.Record.Payload = bytes.Clone(e.Record.Payload)
		scanned = append(scanned, e.Record)
		return nil
	}))
	require.Len(t, scanned, 4)
	assert.NotEqual(t, scanned[0].ID, scanned[3].ID, "same payload twice is two records")

	s := openTestStore(t, path, Config{})
	require.Len(t, s.RepairReport().Files, 1)
	assert.Equal(t, 4, s.RepairReport().Files[0].LegacyRewritten)
	first := failAll(t, s)
	require.NoError(t, s.Close())
	s = openTestStore(t, path, Config{})
	assert.True(t, s.RepairReport().Clean(), "rewritten once")
	got := drainAll(t, s)
	require.Len(t, got, 4)
	for i := range got {
		assert.Equal(t, scanned[i].ID, first[i].ID, "ID seen before the upgrade is kept")
		assert.Equal(t, scanned[i].ID, got[i].ID)
		assert.Equal(t, scanned[i].Payload, got[i].Payload)
	}
	fi, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm(), "0644 legacy file made private")
}

func TestRecoveryResolvesInterruptedReplay(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "p.jsonl")
	recs := testRecords(6)
	// A replay drained segments 1..2 into 1-2 and died before deleting
	// them; segment 3 was sealed after; a temp file was being written.
	require.NoError(t, os.WriteFile(segmentPath(path, 1, 1), encodeLines(recs[0], recs[1]), 0o600))
	require.NoError(t, os.WriteFile(segmentPath(path, 2, 2), encodeLines(recs[2]), 0o600))
	require.NoError(t, os.WriteFile(segmentPath(path, 1, 2), encodeLines(recs[1]), 0o600))
	require.NoError(t, os.WriteFile(segmentPath(path, 3, 3), encodeLines(recs[3], recs[4]), 0o600))
	require.NoError(t, os.WriteFile(path+".tmp-0011223344556677", encodeLines(recs[3]), 0o600))
	require.NoError(t, os.WriteFile(path, encodeLines(recs[5]), 0o600))

	s := openTestStore(t, path, Config{})
	rep := s.RepairReport()
	assert.Len(t, rep.RemovedTemp, 1)
	assert.Len(t, rep.RemovedSuperseded, 2)
	assert.EqualValues(t, 4, s.Stats().PendingRecords)
	got := drainAll(t, s)
	var ids []string
	for _, r := range got {
		ids = append(ids, r.ID)
	}
	assert.Equal(t, []string{recs[1].ID, recs[3].ID, recs[4].ID, recs[5].ID}, ids)
}

func TestRecoveryNeverLoopsOnGarbageFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "p.jsonl")
	junk := make([]byte, 1<<20)
	for i := range junk {
		junk[i] = byte(i*7919) ^ byte(i>>8)
	}
	require.NoError(t, os.WriteFile(path, junk, 0o600))
	s := openTestStore(t, path, Config{})
	assert.Zero(t, s.Stats().PendingRecords)
	assert.Positive(t, s.Stats().Quarantined)
	appendAll(t, s, []byte(`"fresh"`))
	assert.Len(t, drainAll(t, s), 1)
	_, err := s.Replay(context.Background(), func(context.Context, Record) error { return nil })
	require.NoError(t, err)
}
