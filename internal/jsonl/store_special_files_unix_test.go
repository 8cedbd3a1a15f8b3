//go:build unix

package jsonl

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/syncbreaker/syncbreaker/internal/fsx"
	"github.com/syncbreaker/syncbreaker/internal/fsx/fsxtest"
)

// Every file of a store is opened only if it is a regular file. A FIFO
// would otherwise block the open (a read-only open waits for a writer, a
// write-only one for a reader) and hang OpenJSONLStore, Replay or
// RequeueDead for good; a socket, a device or a symlink is no store file
// either. Each case must fail promptly with a message naming the file and
// what it is, and lose no record.

func mkfifo(t *testing.T, path string) {
	t.Helper()
	require.NoError(t, syscall.Mkfifo(path, 0o600))
}

// releaseFIFO opens path's other end and closes it: a reader or writer
// stuck in open(2) on the FIFO then gets its partner, and EOF or EPIPE.
func releaseFIFO(path string) func() {
	return func() {
		if f, err := os.OpenFile(path, os.O_RDWR|syscall.O_NONBLOCK, 0); err == nil {
			_ = f.Close()
		}
	}
}

// openNoHang opens the store at path, which must fail; it closes a store
// that opened anyway.
func openNoHang(t *testing.T, path string, release func()) error {
	t.Helper()
	err := fsxtest.NoHang(t, release, func() error {
		s, err := Open(path, Config{})
		if err == nil {
			_ = s.Close()
			return errors.New("opened")
		}
		return err
	})
	require.Error(t, err)
	return err
}

func TestStoreRefusesFIFOAtStorePath(t *testing.T) {
	path := storePath(t)
	mkfifo(t, path)
	err := openNoHang(t, path, releaseFIFO(path))
	require.ErrorIs(t, err, fsx.ErrNotRegular)
	assert.Equal(t, "syncbreaker: open sync-pending.jsonl: sync-pending.jsonl is a named pipe, not a regular file", err.Error())
}

func TestStoreRefusesFIFOAtLockPath(t *testing.T) {
	path := storePath(t)
	mkfifo(t, path+lockSuffix)
	err := openNoHang(t, path, releaseFIFO(path+lockSuffix))
	require.ErrorIs(t, err, fsx.ErrNotRegular)
	assert.Equal(t, "syncbreaker: lock: sync-pending.jsonl.lock is a named pipe, not a regular file", err.Error())
}

func TestStoreRefusesSocketAtStorePath(t *testing.T) {
	dir, err := os.MkdirTemp("", "sb") // short: a socket path is at most about 100 bytes
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	path := filepath.Join(dir, "sync-pending.jsonl")
	l, err := net.Listen("unix", path)
	require.NoError(t, err)
	defer l.Close()
	err = openNoHang(t, path, nil)
	require.ErrorIs(t, err, fsx.ErrNotRegular)
	assert.Contains(t, err.Error(), "sync-pending.jsonl is a socket, not a regular file")
}

// O_NOFOLLOW keeps a symlink to a device (or anywhere) from being read or
// written through, wherever it is planted.
func TestStoreRefusesSymlinkToDevice(t *testing.T) {
	t.Run("store path", func(t *testing.T) {
		path := storePath(t)
		require.NoError(t, os.Symlink(os.DevNull, path))
		err := openNoHang(t, path, nil)
		assert.Contains(t, err.Error(), "refusing symlink at store path sync-pending.jsonl")
	})
	t.Run("dead-letter file", func(t *testing.T) {
		path := storePath(t)
		s := openTestStore(t, path, Config{MaxAttempts: 1})
		appendAll(t, s, numbered(3)...)
		require.NoError(t, os.Symlink(os.DevNull, path+deadSuffix))
		_, err := noHangReplay(t, s, nil, failing)
		require.ErrorIs(t, err, fsx.ErrNotRegular)
		assert.Contains(t, err.Error(), "sync-pending.jsonl.dead is a symlink, not a regular file")
		require.NoError(t, os.Remove(path+deadSuffix))
		assert.Equal(t, numbered(3), payloadsOf(drainAll(t, s)), "no record lost")
	})
	t.Run("scan", func(t *testing.T) {
		path := storePath(t)
		require.NoError(t, os.Symlink(os.DevNull, path))
		err := fsxtest.NoHang(t, nil, func() error {
			return ScanFile(path, ScanConfig{}, func(ScanEntry) error { return nil })
		})
		require.ErrorIs(t, err, fsx.ErrNotRegular)
		assert.Equal(t, "syncbreaker: scan: sync-pending.jsonl is a symlink, not a regular file", err.Error())
	})
}

func failing(context.Context, Record) error { return errors.New("server down") }

// A replay that dead-letters a record opens P.dead for writing: with a
// FIFO there and no reader, that open used to wait for one forever.
func TestReplayRefusesFIFOAtDeadLetterFile(t *testing.T) {
	path := storePath(t)
	s := openTestStore(t, path, Config{MaxAttempts: 1})
	appendAll(t, s, numbered(3)...)
	mkfifo(t, path+deadSuffix)
	_, err := noHangReplay(t, s, releaseFIFO(path+deadSuffix), failing)
	require.ErrorIs(t, err, fsx.ErrNotRegular)
	assert.Equal(t, "syncbreaker: replay: sync-pending.jsonl.dead is a named pipe, not a regular file", err.Error(),
		"the package prefix, once")

	require.NoError(t, os.Remove(path+deadSuffix))
	assert.Equal(t, numbered(3), payloadsOf(drainAll(t, s)), "no record lost")
}

// RequeueDead reads P.dead: with a FIFO there and no writer, that open
// used to wait for one forever.
func TestRequeueDeadRefusesFIFOAtDeadLetterFile(t *testing.T) {
	path := storePath(t)
	s := openTestStore(t, path, Config{})
	appendAll(t, s, numbered(2)...)
	mkfifo(t, path+deadSuffix)
	err := fsxtest.NoHang(t, releaseFIFO(path+deadSuffix), func() error {
		_, err := s.RequeueDead(context.Background())
		return err
	})
	require.ErrorIs(t, err, fsx.ErrNotRegular)
	assert.Equal(t, "syncbreaker: requeue: sync-pending.jsonl.dead is a named pipe, not a regular file", err.Error())
	assert.Equal(t, numbered(2), payloadsOf(drainAll(t, s)), "no record lost")
}

// Opening a store with a damaged line moves the line to P.quarantine.
func TestStoreRefusesFIFOAtQuarantineFile(t *testing.T) {
	path := storePath(t)
	s := openTestStore(t, path, Config{})
	appendAll(t, s, numbered(2)...)
	require.NoError(t, s.Close())
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	require.NoError(t, err)
	_, err = f.WriteString("not a record\n")
	require.NoError(t, err)
	require.NoError(t, f.Close())
	mkfifo(t, path+quarantineSuffix)

	err = openNoHang(t, path, releaseFIFO(path+quarantineSuffix))
	require.ErrorIs(t, err, fsx.ErrNotRegular)
	assert.Contains(t, err.Error(), "sync-pending.jsonl.quarantine is a named pipe, not a regular file")

	require.NoError(t, os.Remove(path+quarantineSuffix))
	s = openTestStore(t, path, Config{})
	assert.Equal(t, 1, s.RepairReport().Files[0].Quarantined)
	assert.Equal(t, numbered(2), payloadsOf(drainAll(t, s)), "no record lost")
}

// A FIFO under a segment's name is not a segment: listing skips it, so no
// replay opens it, and the head lookup that opens a segment by name
// refuses it too.
func TestStoreIgnoresFIFOAtSegmentName(t *testing.T) {
	path := storePath(t)
	fifo := segmentPath(path, 1, 1)
	mkfifo(t, fifo)
	s := openTestStore(t, path, Config{})
	appendAll(t, s, numbered(3)...)
	var got [][]byte
	_, err := noHangReplay(t, s, releaseFIFO(fifo), func(_ context.Context, r Record) error {
		got = append(got, r.Payload)
		return nil
	})
	require.NoError(t, err)
	assert.Equal(t, numbered(3), got)

	other := segmentPath(path, 7, 7)
	mkfifo(t, other)
	var head time.Time
	require.NoError(t, fsxtest.NoHang(t, releaseFIFO(other), func() error {
		head, _ = headTime(fsx.OS{}, other, 0, maxLineSize(0))
		return nil
	}))
	assert.True(t, head.IsZero())
}
