package jsonl

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func refuseAll(context.Context, Record) error { return errors.New("server says no") }

func deadLetterAll(context.Context, Record) error { return ErrDeadLetter }

// readDead returns the records of the dead-letter file and counts the
// lines that are not records.
func readDead(t *testing.T, path string) (recs []Record, bad int) {
	t.Helper()
	require.NoError(t, ScanFile(path+deadSuffix, ScanConfig{}, func(e ScanEntry) error {
		if e.Problem != ProblemNone {
			bad++
			return nil
		}
		e.Record.Payload = bytes.Clone(e.Record.Payload)
		recs = append(recs, e.Record)
		return nil
	}))
	return recs, bad
}

// Fault 1: a dead letter whose write fails, or comes up short, is cut back.
// It used to stay as a partial line; the next dead letter was glued onto
// it, and RequeueDead then quarantined that intact record instead of
// delivering it.
func TestDeadLetterFailedWriteIsCutBack(t *testing.T) {
	for _, fault := range []error{syscall.EIO, syscall.ENOSPC, io.ErrShortWrite} {
		t.Run(fault.Error(), func(t *testing.T) {
			ctx := context.Background()
			ffs := &faultFS{}
			path := filepath.Join(t.TempDir(), "p.jsonl")
			s := openTestStore(t, path, Config{fs: ffs, MaxAttempts: 1})
			appendAll(t, s, numbered(3)...)
			ffs.set(failOn("write", named("p.jsonl.dead"), fault, 1)) // half the line reaches the file
			_, err := s.Replay(ctx, refuseAll)
			require.ErrorIs(t, err, fault)
			ffs.set(nil)
			res, err := s.Replay(ctx, refuseAll)
			require.NoError(t, err)
			assert.Equal(t, 3, res.DeadLettered)

			recs, bad := readDead(t, path)
			assert.Zero(t, bad, "no partial line in the dead letters")
			assert.Len(t, recs, 3)
			n, err := s.RequeueDead(ctx)
			require.NoError(t, err)
			assert.Equal(t, 3, n)
			assert.Zero(t, s.Stats().Quarantined)
			assert.Equal(t, numbered(3), payloadsOf(drainAll(t, s)))
		})
	}
}

// Fault 1, after a crash: a torn last line of P.dead is moved to the
// quarantine at open, so the next dead letter starts a line of its own;
// a torn last line of P.quarantine is finished with a newline.
func TestOpenRepairsTornSideFiles(t *testing.T) {
	ctx := context.Background()
	path := storePath(t)
	recs := testRecords(2)
	torn := encodeLines(Record{ID: "id-torn", Payload: []byte(`"lost in a crash"`)})
	torn = torn[:len(torn)/2]
	require.NoError(t, os.WriteFile(path+deadSuffix, append(encodeLines(recs[0]), torn...), 0o600))
	require.NoError(t, os.WriteFile(path+quarantineSuffix, []byte("junk\ntorn junk"), 0o600))
	// A damaged pending line, quarantined at the same open.
	require.NoError(t, os.WriteFile(path, append(encodeLines(recs[1]), "damaged\n"...), 0o600))

	s := openTestStore(t, path, Config{MaxAttempts: 1})
	var deadRep *FileRepair
	for i, f := range s.RepairReport().Files {
		if f.Path == path+deadSuffix {
			deadRep = &s.RepairReport().Files[i]
		}
	}
	require.NotNil(t, deadRep, "the torn dead letter is reported: %+v", s.RepairReport())
	assert.Equal(t, FileRepair{Path: path + deadSuffix, TornBytes: int64(len(torn)), Quarantined: 1,
		QuarantinedBytes: int64(len(torn)) + 1}, *deadRep)
	q, err := os.ReadFile(path + quarantineSuffix)
	require.NoError(t, err)
	assert.Equal(t, "junk\ntorn junk\n"+string(torn)+"\ndamaged\n", string(q), "every quarantined line on its own line")
	d, err := os.ReadFile(path + deadSuffix)
	require.NoError(t, err)
	assert.Equal(t, encodeLines(recs[0]), d)
	assert.EqualValues(t, 2, s.Stats().Quarantined)

	// The next dead letter is not glued to the torn one: both dead
	// letters come back.
	_, err = s.Replay(ctx, deadLetterAll)
	require.NoError(t, err)
	n, err := s.RequeueDead(ctx)
	require.NoError(t, err)
	assert.Equal(t, 2, n)
	got := drainAll(t, s)
	require.Len(t, got, 2)
	assert.Equal(t, []string{recs[0].ID, recs[1].ID}, []string{got[0].ID, got[1].ID})
}

// A too-long line streams to the quarantine in pieces; a piece that fails
// takes the whole line back out, so the retry does not append it to a
// partial copy. (Last in the file with its newline, it is no torn tail.)
func TestQuarantineStreamedLineIsCutBackWhole(t *testing.T) {
	path := filepath.Join(t.TempDir(), "p.jsonl")
	recs := testRecords(2)
	long := bytes.Repeat([]byte("L"), maxLineSize(0)+100<<10)
	require.NoError(t, os.WriteFile(path, bytes.Join([][]byte{encodeLines(recs[0]), encodeLines(recs[1]), long, []byte("\n")}, nil), 0o600))
	writes := 0
	ffs := &faultFS{fail: func(op, name string) error {
		if op == "write" && name == "p.jsonl.quarantine" {
			if writes++; writes == 2 {
				return syscall.EIO
			}
		}
		return nil
	}}
	_, err := Open(path, Config{fs: ffs})
	require.ErrorIs(t, err, syscall.EIO)
	q, err := os.ReadFile(path + quarantineSuffix)
	if !errors.Is(err, os.ErrNotExist) {
		require.NoError(t, err)
		assert.Zero(t, len(q), "nothing of the line stays")
	}

	s := openTestStore(t, path, Config{})
	rep := s.RepairReport()
	require.Len(t, rep.Files, 1)
	assert.Equal(t, 1, rep.Files[0].Quarantined)
	assert.Zero(t, rep.Files[0].TornBytes)
	q, err = os.ReadFile(path + quarantineSuffix)
	require.NoError(t, err)
	assert.True(t, bytes.Equal(append(long, '\n'), q), "one whole copy: %d bytes, want %d", len(q), len(long)+1)
	assert.Len(t, drainAll(t, s), 2)
}

// The append log's own contract, on the plain file system.
func TestAppendLogCutsBackUnfinishedLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "side")
	l := newAppendLog(&faultFS{}, path)
	require.NoError(t, l.writeLine([]byte("one")))
	_, err := l.Write([]byte("half of two"))
	require.NoError(t, err)
	assert.EqualValues(t, len("one\nhalf of two"), l.size.Load())
	require.NoError(t, l.sync(), "cuts the unfinished line")
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, "one\n", string(b))
	assert.EqualValues(t, 4, l.size.Load())

	m := l.mark()
	require.NoError(t, l.writeLine([]byte("two")))
	require.NoError(t, l.rollback(m))
	b, err = os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, "one\n", string(b))

	// Removed by hand while closed: the next write starts a new file.
	require.NoError(t, os.Remove(path))
	l.refresh()
	assert.Zero(t, l.size.Load())
	require.NoError(t, l.writeLine([]byte(fmt.Sprint(3))))
	require.NoError(t, l.sync())
	b, err = os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, "3\n", string(b))
}

// A failed or short write is cut back at once, and a failed cut is retried
// before the next write, which is refused until it succeeds.
func TestAppendLogFailedWrite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "side")
	ffs := &faultFS{}
	l := newAppendLog(ffs, path)
	require.NoError(t, l.writeLine([]byte("one")))
	content := func() string {
		b, err := os.ReadFile(path)
		require.NoError(t, err)
		return string(b)
	}

	ffs.set(failOn("write", anyFile, io.ErrShortWrite, 1)) // half the line reaches the file
	require.ErrorIs(t, l.writeLine([]byte("lost")), io.ErrShortWrite)
	assert.Equal(t, "one\n", content())
	assert.EqualValues(t, 4, l.size.Load())

	ffs.set(func(op, name string) error {
		if op == "write" || op == "truncate" {
			return syscall.EIO
		}
		return nil
	})
	require.ErrorIs(t, l.writeLine([]byte("lost too")), syscall.EIO)
	ffs.set(failOn("truncate", anyFile, syscall.EIO, 1))
	require.ErrorIs(t, l.writeLine([]byte("refused")), syscall.EIO, "not written after junk")
	ffs.set(nil)
	require.NoError(t, l.writeLine([]byte("two")))
	require.NoError(t, l.sync())
	assert.Equal(t, "one\ntwo\n", content())
	assert.EqualValues(t, 8, l.size.Load())
}
