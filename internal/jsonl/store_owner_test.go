package jsonl

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/syncbreaker/syncbreaker/internal/fsx"
)

// A deleted lock file (someone cleared a "stale" lock) never admits a
// second owner, in this process or another: the store also holds a lock on
// its active file's descriptor.
func TestDeletedLockFileAdmitsNoSecondOwner(t *testing.T) {
	path := storePath(t)
	s := openTestStore(t, path, Config{})
	appendAll(t, s, numbered(3)...)
	if err := os.Remove(path + lockSuffix); err != nil {
		t.Skipf("an open lock file cannot be removed here: %v", err)
	}
	_, err := Open(path, Config{})
	require.ErrorIs(t, err, fsx.ErrLocked, "a second open in the same process")
	_, err = Open(path, Config{CheckAll: true}) // pendingctl repair
	require.ErrorIs(t, err, fsx.ErrLocked)

	// The first owner goes on, across a seal (a new active file, locked
	// again), and nothing was rewritten under it.
	assert.Equal(t, numbered(3), payloadsOf(failAll(t, s)))
	appendAll(t, s, []byte(`"after"`))
	if err := os.Remove(path + lockSuffix); err == nil {
		_, err = Open(path, Config{})
		require.ErrorIs(t, err, fsx.ErrLocked, "the new active file is locked too")
	}
	require.NoError(t, s.Close())
	s = openTestStore(t, path, Config{})
	assert.Equal(t, append(numbered(3), []byte(`"after"`)), payloadsOf(drainAll(t, s)))
}

// A store that finds another owner of its active file stops writing:
// Append fails with ErrLocked, logged, rather than write under it.
func TestStoreThatFindsAnotherOwnerStopsWriting(t *testing.T) {
	path := storePath(t)
	var logs bytes.Buffer
	ffs := &faultFS{}
	s, err := Open(path, Config{fs: ffs, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	appendAll(t, s, numbered(2)...)
	// The seal's new active file turns out to be locked by someone else.
	ffs.set(failOn("lockfile", named("sync-pending.jsonl"), fsx.ErrLocked, -1))
	_, err = s.Replay(context.Background(), func(context.Context, Record) error { return errors.New("server down") })
	require.Error(t, err)
	err = s.Append(context.Background(), []byte(`"x"`))
	require.ErrorIs(t, err, fsx.ErrLocked)
	assert.Contains(t, logs.String(), "another owner")
	ffs.set(nil)
	require.ErrorIs(t, s.Append(context.Background(), []byte(`"y"`)), fsx.ErrLocked, "it stays stopped")
}
