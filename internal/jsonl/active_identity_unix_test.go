//go:build unix

package jsonl

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/syncbreaker/syncbreaker/internal/fsx"
)

// Removing or moving a file the process has open works on Unix only
// (Windows refuses while the store holds it), hence the build tag.

func logTo(buf *bytes.Buffer) *slog.Logger { return slog.New(slog.NewTextHandler(buf, nil)) }

func segmentsOf(t *testing.T, path string) []string {
	t.Helper()
	segs, err := filepath.Glob(path + segInfix + "*")
	require.NoError(t, err)
	return segs
}

// The first user's cleanup deletes the spill file while the daemon runs:
// records appended before and after the deletion are all delivered, under
// every policy.
func TestDeletedActiveFileLosesNothing(t *testing.T) {
	for _, policy := range []SyncPolicy{SyncAlways, SyncInterval, SyncNever} {
		t.Run(policy.String(), func(t *testing.T) {
			path := storePath(t)
			var logs bytes.Buffer
			s, err := Open(path, Config{Sync: policy, Logger: logTo(&logs)})
			require.NoError(t, err)
			payloads := numbered(20)
			appendAll(t, s, payloads[:10]...)
			require.NoError(t, os.Remove(path))
			appendAll(t, s, payloads[10:]...)
			require.NoError(t, s.Close())
			assert.Contains(t, logs.String(), "deleted or moved")

			s = openTestStore(t, path, Config{})
			assert.Equal(t, payloads, payloadsOf(drainAll(t, s)), "20 of 20 delivered, in order")
		})
	}
}

// Under SyncAlways the check runs after each fsync round, before its
// appenders are released: the restore happens at the first Append after
// the deletion, not at Close.
func TestFsyncRoundRestoresDeletedActiveFile(t *testing.T) {
	path := storePath(t)
	s := openTestStore(t, path, Config{})
	appendAll(t, s, numbered(3)...)
	require.NoError(t, os.Remove(path))
	appendAll(t, s, []byte(`"after"`))
	assert.Len(t, segmentsOf(t, path), 1, "restored into a segment of its own")
	_, err := os.Stat(path)
	require.NoError(t, err, "a new active file at the path")
	assert.EqualValues(t, 1, s.Stats().ActiveRestored)
	assert.EqualValues(t, 4, s.Stats().PendingRecords)
	assert.Equal(t, append(numbered(3), []byte(`"after"`)), payloadsOf(drainAll(t, s)))
}

// A move to the trash, and a new file someone created at the path: the
// moved file is left alone, the new one is not written over, and its line
// is taken in.
func TestMovedActiveFileAndAFileCreatedThere(t *testing.T) {
	path := storePath(t)
	s := openTestStore(t, path, Config{})
	appendAll(t, s, numbered(10)...)
	trash := filepath.Join(t.TempDir(), "trash.jsonl")
	require.NoError(t, os.Rename(path, trash))
	before, err := os.ReadFile(trash)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(path, []byte(`{"cmd":"ls"}`+"\n"), 0o644))
	appendAll(t, s, []byte(`"after"`))
	require.NoError(t, s.Close())
	after, err := os.ReadFile(trash)
	require.NoError(t, err)
	// Only what the store wrote before its next check reaches it.
	assert.True(t, bytes.HasPrefix(after, before), "the moved file is never cut or rewritten")

	s = openTestStore(t, path, Config{})
	got := payloadsOf(drainAll(t, s))
	want := append(append(numbered(10), []byte(`{"cmd":"ls"}`)), []byte(`"after"`))
	assert.ElementsMatch(t, want, got, "ours and the new file's line, none lost")
}

// The seal checks before it closes the file: a replay right after the
// deletion (SyncNever: no fsync round to notice) delivers everything.
func TestSealRestoresDeletedActiveFile(t *testing.T) {
	path := storePath(t)
	s := openTestStore(t, path, Config{Sync: SyncNever})
	appendAll(t, s, numbered(5)...)
	require.NoError(t, os.Remove(path))
	assert.Equal(t, numbered(5), payloadsOf(drainAll(t, s)))
	assert.EqualValues(t, 0, s.Stats().PendingRecords)
}

// The commit checks before it makes removals durable: a record the
// handler spilled again after the active file was deleted survives.
func TestCommitRestoresDeletedActiveFile(t *testing.T) {
	path := storePath(t)
	s := openTestStore(t, path, Config{Sync: SyncNever})
	appendAll(t, s, numbered(2)...)
	_, err := s.Replay(context.Background(), func(ctx context.Context, r Record) error {
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		return s.Append(ctx, append([]byte(`"again"`), []byte{}...))
	})
	require.NoError(t, err)
	require.NoError(t, s.Close())
	s = openTestStore(t, path, Config{})
	assert.Equal(t, [][]byte{[]byte(`"again"`), []byte(`"again"`)}, payloadsOf(drainAll(t, s)))
}

// With nothing else going on, the store checks at least once a second.
func TestIdleStoreRestoresDeletedActiveFileWithinASecond(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		path := storePath(t)
		s, err := Open(path, Config{Sync: SyncNever})
		require.NoError(t, err)
		appendAll(t, s, numbered(3)...)
		require.NoError(t, os.Remove(path))
		time.Sleep(watchEvery / 2)
		synctest.Wait()
		assert.Empty(t, segmentsOf(t, path), "not yet")
		time.Sleep(watchEvery / 2)
		synctest.Wait()
		require.Len(t, segmentsOf(t, path), 1, "restored within a second, with no append or close")
		body, err := os.ReadFile(segmentsOf(t, path)[0])
		require.NoError(t, err)
		assert.Equal(t, 3, bytes.Count(body, []byte("\n")))
		require.NoError(t, s.Close())
	})
}

// A truncated active file (same inode, smaller) is reported and counted,
// never extended with a hole: writing goes on after its last whole record.
func TestTruncatedActiveFileIsReportedNeverExtended(t *testing.T) {
	path := storePath(t)
	var logs bytes.Buffer
	s, err := Open(path, Config{Logger: logTo(&logs)})
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	appendAll(t, s, numbered(10)...)
	fi, err := os.Stat(path)
	require.NoError(t, err)
	require.NoError(t, os.Truncate(path, fi.Size()/2+3)) // mid-line
	// The Append that finds it writes after the last whole record.
	appendAll(t, s, []byte(`"finds it"`), []byte(`"next"`))
	body, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.NotContains(t, string(body), "\x00", "no hole")
	assert.Contains(t, logs.String(), "truncated")
	st := s.Stats()
	assert.EqualValues(t, 1, st.ActiveTruncated)
	survivors := bytes.Count(body, []byte("\n")) - 2
	assert.EqualValues(t, 10-survivors, st.LostRecords, "the exact loss")
	require.NoError(t, s.Close())

	s = openTestStore(t, path, Config{})
	assert.Empty(t, s.RepairReport().Files, "nothing to repair")
	got := payloadsOf(drainAll(t, s))
	assert.Equal(t, append(numbered(survivors), []byte(`"finds it"`), []byte(`"next"`)), got)
}

// A deleted sealed segment cannot be restored: the exact loss (the
// ledger's count) is logged and counted.
func TestDeletedSealedSegmentIsReported(t *testing.T) {
	path := storePath(t)
	var logs bytes.Buffer
	s, err := Open(path, Config{Logger: logTo(&logs)})
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	appendAll(t, s, numbered(5)...)
	failAll(t, s) // kept in a sealed segment the ledger counts
	appendAll(t, s, []byte(`"active"`))
	segs := segmentsOf(t, path)
	require.Len(t, segs, 1)
	require.NoError(t, os.Remove(segs[0]))
	assert.Equal(t, [][]byte{[]byte(`"active"`)}, payloadsOf(drainAll(t, s)))
	st := s.Stats()
	assert.EqualValues(t, 5, st.LostRecords)
	assert.EqualValues(t, 0, st.PendingRecords)
	assert.Contains(t, logs.String(), "records=5")
	assert.True(t, strings.Contains(logs.String(), "deleted"), logs.String())
}

// The whole directory removed (rm -rf ~/.shelltime): the store recreates
// it, 0700, and restores what it held; the lock on the active file still
// keeps a second owner out.
func TestRemovedDirectoryIsRecreated(t *testing.T) {
	path := storePath(t)
	s := openTestStore(t, path, Config{})
	appendAll(t, s, numbered(3)...)
	require.NoError(t, os.RemoveAll(filepath.Dir(path)))
	appendAll(t, s, []byte(`"after"`))
	fi, err := os.Stat(filepath.Dir(path))
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o700), fi.Mode().Perm())
	_, err = Open(path, Config{})
	require.ErrorIs(t, err, fsx.ErrLocked, "no second owner, lock file gone or not")
	require.NoError(t, s.Close())
	s = openTestStore(t, path, Config{})
	assert.Equal(t, append(numbered(3), []byte(`"after"`)), payloadsOf(drainAll(t, s)))
}

// A truncation the watch finds (nothing else runs) is counted too.
func TestIdleStoreNoticesTruncationWithinASecond(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		path := storePath(t)
		s, err := Open(path, Config{Sync: SyncNever})
		require.NoError(t, err)
		appendAll(t, s, numbered(4)...)
		fi, err := os.Stat(path)
		require.NoError(t, err)
		require.NoError(t, os.Truncate(path, fi.Size()/2))
		time.Sleep(watchEvery)
		synctest.Wait()
		st := s.Stats()
		assert.EqualValues(t, 1, st.ActiveTruncated)
		assert.EqualValues(t, 2, st.LostRecords)
		assert.EqualValues(t, 2, st.PendingRecords)
		require.NoError(t, s.Close())
		s, err = Open(path, Config{})
		require.NoError(t, err)
		assert.Equal(t, numbered(2), payloadsOf(drainAll(t, s)))
		require.NoError(t, s.Close())
	})
}
