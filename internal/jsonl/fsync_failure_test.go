package jsonl

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/syncbreaker/syncbreaker/internal/fsx"
)

// lossyFS is the real file system with a model of a failed fsync as Linux
// may have it ("fsyncgate"): the fsync drops the writes it was to make
// durable, here by cutting the file back to its size at its last
// successful fsync, and clears the error, so the next fsync succeeds.
// onSync is asked before every fsync of a file (by base name); an error
// fails it. Writes after the drop land where they were aimed, past the new
// end of file, leaving a hole, as on a disk that lost the pages.
type lossyFS struct {
	fsx.OS
	onSync func(name string) error
}

func (f *lossyFS) OpenFile(name string, flag int, perm os.FileMode) (fsx.File, error) {
	file, err := f.OS.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	fi, err := file.Stat()
	if err != nil {
		return nil, errors.Join(err, file.Close())
	}
	return &lossyFile{File: file, onSync: f.onSync, synced: fi.Size()}, nil
}

type lossyFile struct {
	fsx.File
	onSync func(name string) error
	mu     sync.Mutex
	synced int64 // size at the last successful fsync
}

func (f *lossyFile) Sync() error {
	if err := f.onSync(filepath.Base(f.Name())); err != nil {
		f.mu.Lock()
		defer f.mu.Unlock()
		return errors.Join(err, f.File.Truncate(f.synced))
	}
	fi, err := f.File.Stat()
	if err != nil {
		return err
	}
	if err := f.File.Sync(); err != nil {
		return err
	}
	f.mu.Lock()
	f.synced = fi.Size()
	f.mu.Unlock()
	return nil
}

func (f *lossyFile) Truncate(n int64) error {
	if err := f.File.Truncate(n); err != nil {
		return err
	}
	f.mu.Lock()
	f.synced = min(f.synced, n)
	f.mu.Unlock()
	return nil
}

// assertFsyncError checks an error a failed fsync gave an appender: it
// wraps the fsync's error, names the package once and holds no payload.
func assertFsyncError(t *testing.T, err error, payloads ...[]byte) {
	t.Helper()
	if !assert.ErrorIs(t, err, syscall.EIO) {
		return
	}
	assert.Equal(t, 1, strings.Count(err.Error(), "syncbreaker:"), "%q", err)
	for _, p := range payloads {
		assert.NotContains(t, err.Error(), string(p), "no payload in errors")
	}
}

// assertStatsMatchDisk checks the pending counts against the files.
func assertStatsMatchDisk(t *testing.T, s *Store) {
	t.Helper()
	files, err := filepath.Glob(s.Path() + "*")
	require.NoError(t, err)
	var size int64
	for _, f := range files {
		if f == s.Path() || strings.Contains(f, segInfix) {
			fi, err := os.Stat(f)
			require.NoError(t, err)
			size += fi.Size()
		}
	}
	assert.Equal(t, size, s.Stats().PendingBytes, "pending bytes are the bytes on disk")
}

// A failed fsync fails every appender waiting on it, and every record
// written before it ended, and cuts those records back; a later fsync that
// succeeds is not taken as proof for them. Without that, the appenders
// that retried after the failure got nil for records the fsync had
// dropped.
func TestFailedFsyncFailsEveryWaiter(t *testing.T) {
	const late = 5
	var syncs atomic.Int32
	reached, release := make(chan struct{}), make(chan struct{})
	lfs := &lossyFS{onSync: func(name string) error {
		if !isActive(name) {
			return nil
		}
		if syncs.Add(1) == 4 { // the first after the three records below
			close(reached)
			<-release
			return syscall.EIO
		}
		return nil
	}}
	path := filepath.Join(t.TempDir(), "p.jsonl")
	s := openTestStore(t, path, Config{fs: lfs})
	ctx := context.Background()
	appendAll(t, s, numbered(3)...)

	doomed := func(i int) []byte { return fmt.Appendf(nil, `{"doomed":%d}`, i) }
	errs := make([]error, late+1)
	var wg sync.WaitGroup
	wg.Go(func() { errs[0] = s.Append(ctx, doomed(0)) })
	<-reached
	for i := 1; i <= late; i++ {
		wg.Go(func() { errs[i] = s.Append(ctx, doomed(i)) })
	}
	require.Eventually(t, func() bool { return s.Stats().Appended == 3+1+late }, 10*time.Second, time.Millisecond,
		"the late appenders write while the fsync runs")
	close(release)
	wg.Wait()
	for i, err := range errs {
		assertFsyncError(t, err, doomed(i))
	}
	assert.Equal(t, int32(4), syncs.Load(), "the failed fsync is not retried")
	st := s.Stats()
	assert.EqualValues(t, 3, st.PendingRecords)
	assert.EqualValues(t, 3, st.Appended, "the failed appends are not counted as appended")
	assert.EqualValues(t, 1, st.SyncErrors)
	assertStatsMatchDisk(t, s)

	appendAll(t, s, []byte(`"after"`)) // starts clean where the cut left off
	assertStatsMatchDisk(t, s)
	require.NoError(t, s.Close())

	s = openTestStore(t, path, Config{})
	assert.True(t, s.RepairReport().Clean(), "no hole, no torn line: %+v", s.RepairReport())
	assert.Equal(t, append(numbered(3), []byte(`"after"`)), payloadsOf(drainAll(t, s)))
}

// Under concurrent appenders, seals and failing fsyncs that drop what they
// covered, the store ends up holding exactly the records whose Append
// returned nil: none of them lost, none of the failed ones kept.
func TestFailedFsyncsKeepExactlyTheAcknowledgedRecords(t *testing.T) {
	var syncs atomic.Int32
	var failing atomic.Bool
	failing.Store(true)
	lfs := &lossyFS{onSync: func(name string) error {
		if isActive(name) && failing.Load() && syncs.Add(1)%4 == 0 {
			return syscall.EIO
		}
		return nil
	}}
	path := filepath.Join(t.TempDir(), "p.jsonl")
	s := openTestStore(t, path, Config{fs: lfs, SegmentBytes: 4 << 10})
	ctx := context.Background()

	const workers, each = 8, 60
	var (
		mu     sync.Mutex
		acked  = map[string]bool{}
		failed int
		wg     sync.WaitGroup
	)
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				p := fmt.Appendf(nil, `{"w":%d,"i":%d}`, w, i)
				err := s.Append(ctx, p)
				mu.Lock()
				if err == nil {
					acked[string(p)] = true
				} else {
					failed++
					assertFsyncError(t, err, p)
				}
				mu.Unlock()
			}
		})
	}
	// Replays seal the active file while appends go on; their seal may
	// be the fsync that fails.
	stop := make(chan struct{})
	replays := make(chan int)
	go func() {
		n := 0
		for {
			select {
			case <-stop:
				replays <- n
				return
			default:
			}
			_, err := s.Replay(ctx, func(context.Context, Record) error { return ErrNotAttempted })
			if err != nil {
				assert.ErrorIs(t, err, syscall.EIO)
				assert.Equal(t, 1, strings.Count(err.Error(), "syncbreaker:"), "%q", err)
			}
			n++
		}
	}()
	wg.Wait()
	close(stop)
	t.Logf("%d acknowledged, %d failed, %d replays, %d fsync errors", len(acked), failed, <-replays, s.Stats().SyncErrors)
	require.Positive(t, failed, "some fsyncs failed under appenders")
	require.NotEmpty(t, acked)
	assert.EqualValues(t, len(acked), s.Stats().PendingRecords)
	assertStatsMatchDisk(t, s)
	failing.Store(false)
	require.NoError(t, s.Close())

	s = openTestStore(t, path, Config{})
	assert.True(t, s.RepairReport().Clean(), "no hole, no torn line: %+v", s.RepairReport())
	got := map[string]int{}
	for _, r := range drainAll(t, s) {
		got[string(r.Payload)]++
	}
	for p := range acked {
		assert.Equal(t, 1, got[p], "acknowledged record %s is there once", p)
	}
	for p := range got {
		assert.True(t, acked[p], "record %s is there, but its Append failed", p)
	}
}

// failNextSync returns a file system whose next fsync, once fail is set,
// fails with EIO; the ones after it succeed.
func failNextSync() (fail *atomic.Bool, hook *syncHookFS) {
	fail = new(atomic.Bool)
	return fail, &syncHookFS{onSync: func() error {
		if fail.CompareAndSwap(true, false) {
			return syscall.EIO
		}
		return nil
	}}
}

// A seal whose fsync fails does not rename the active file into a segment
// as if it were durable. Under SyncInterval the records were acknowledged,
// so they stay in the active file; the next replay seals them.
func TestFailedSealFsyncDoesNotRename(t *testing.T) {
	fail, hook := failNextSync()
	path := filepath.Join(t.TempDir(), "p.jsonl")
	s := openTestStore(t, path, Config{fs: hook, Sync: SyncInterval, SyncInterval: 1 << 40})
	appendAll(t, s, numbered(3)...)
	fail.Store(true)
	_, err := s.Replay(context.Background(), func(context.Context, Record) error {
		t.Error("no record is delivered from a seal that failed")
		return nil
	})
	require.ErrorIs(t, err, syscall.EIO)
	assert.Contains(t, err.Error(), "seal")
	assert.Equal(t, 1, strings.Count(err.Error(), "syncbreaker:"), "%q", err)
	files, gerr := filepath.Glob(path + "*")
	require.NoError(t, gerr)
	for _, f := range files {
		assert.False(t, isSeg(filepath.Base(f)), "nothing renamed: %s", filepath.Base(f))
	}
	st := s.Stats()
	assert.EqualValues(t, 3, st.PendingRecords, "acknowledged records stay")
	assert.EqualValues(t, 1, st.SyncErrors)
	assertStatsMatchDisk(t, s)
	assert.Equal(t, numbered(3), payloadsOf(drainAll(t, s)))
}

// lockedBuffer is a bytes.Buffer for a logger written from the store's
// timer goroutine.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// Under SyncInterval a background fsync that fails cannot fail the appends
// it covered, which have returned: it is logged (without payloads) and
// counted, and the records stay; the next background fsync runs as usual.
func TestFailedBackgroundFsync(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var fail atomic.Bool
		var syncs atomic.Int32
		hook := &syncHookFS{onSync: func() error {
			syncs.Add(1)
			if fail.CompareAndSwap(true, false) {
				return syscall.EIO
			}
			return nil
		}}
		var logs lockedBuffer
		path := filepath.Join(t.TempDir(), "p.jsonl")
		s, err := Open(path, Config{fs: hook, Sync: SyncInterval, SyncInterval: time.Second,
			Logger: slog.New(slog.NewTextHandler(&logs, nil))})
		require.NoError(t, err)
		secret := []byte(`{"cmd":"export TOKEN=hunter2"}`)
		fail.Store(true)
		appendAll(t, s, secret, secret, secret)

		time.Sleep(2 * time.Second)
		synctest.Wait()
		assert.Equal(t, int32(1), syncs.Load())
		st := s.Stats()
		assert.EqualValues(t, 1, st.SyncErrors)
		assert.EqualValues(t, 3, st.PendingRecords, "acknowledged records are never cut")
		assert.Contains(t, logs.String(), "fsync of the active file failed")
		assert.Contains(t, logs.String(), "may not survive power loss")
		assert.NotContains(t, logs.String(), "hunter2")

		appendAll(t, s, []byte(`"after"`))
		time.Sleep(2 * time.Second)
		synctest.Wait()
		assert.Equal(t, int32(2), syncs.Load(), "the next write's background fsync runs")
		assert.EqualValues(t, 1, s.Stats().SyncErrors)
		require.NoError(t, s.Close())

		s, err = Open(path, Config{})
		require.NoError(t, err)
		assert.Equal(t, [][]byte{secret, secret, secret, []byte(`"after"`)}, payloadsOf(drainAll(t, s)))
		require.NoError(t, s.Close())
	})
}

// A replay removes records only once the active file, which may hold
// their respilled copies, is fsynced; when that fsync fails, the replay
// removes nothing (and is not retried into a success), and the next replay
// delivers everything.
func TestFailedCommitFsyncRemovesNothing(t *testing.T) {
	fail, hook := failNextSync()
	path := filepath.Join(t.TempDir(), "p.jsonl")
	s := openTestStore(t, path, Config{fs: hook, Sync: SyncInterval, SyncInterval: 1 << 40})
	ctx := context.Background()
	appendAll(t, s, numbered(2)...)
	respill := []byte(`{"respilled":true}`)
	_, err := s.Replay(ctx, func(_ context.Context, r Record) error {
		if bytes.Equal(r.Payload, numbered(1)[0]) {
			require.NoError(t, s.Append(ctx, respill)) // acknowledged: SyncInterval
			fail.Store(true)                           // the commit's fsync fails
		}
		return nil
	})
	require.ErrorIs(t, err, syscall.EIO)
	assert.Contains(t, err.Error(), "commit")
	assert.Equal(t, 1, strings.Count(err.Error(), "syncbreaker:"), "%q", err)
	st := s.Stats()
	assert.EqualValues(t, 3, st.PendingRecords, "nothing removed, the respilled record kept")
	assert.EqualValues(t, 1, st.SyncErrors)
	assertStatsMatchDisk(t, s)
	assert.Equal(t, append(numbered(2), respill), payloadsOf(drainAll(t, s)))
}
