package jsonl

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Purge removes every record the store holds (pending, in the active file
// and in segments, dead-lettered and quarantined), and the store goes on.
func TestPurgeRemovesEverythingAndTheStoreGoesOn(t *testing.T) {
	path := storePath(t)
	s := openTestStore(t, path, Config{MaxAttempts: 1})
	appendAll(t, s, []byte(`{"cmd":"export TOKEN=hunter2"}`))
	failAll(t, s) // dead-lettered
	require.NoError(t, s.Close())
	s = openTestStore(t, path, Config{})
	appendAll(t, s, numbered(3)...)
	failAll(t, s) // a sealed segment
	appendAll(t, s, numbered(2)...)
	require.NoError(t, os.WriteFile(path+quarantineSuffix, []byte("junk\n"), 0o600))

	res, err := s.Purge(context.Background())
	require.NoError(t, err)
	assert.EqualValues(t, 5, res.Pending)
	assert.True(t, res.DeadLettered)
	assert.True(t, res.Quarantined)
	assert.EqualValues(t, 0, s.Stats().PendingRecords)
	assert.EqualValues(t, 0, s.Stats().PendingBytes)
	for _, f := range []string{path + deadSuffix, path + quarantineSuffix} {
		_, err := os.Stat(f)
		assert.ErrorIs(t, err, os.ErrNotExist, filepath.Base(f))
	}
	segs, err := filepath.Glob(path + segInfix + "*")
	require.NoError(t, err)
	assert.Empty(t, segs)
	for _, name := range []string{path, path + ledgerSuffix} {
		body, err := os.ReadFile(name)
		if err == nil {
			assert.NotContains(t, string(body), "hunter2", filepath.Base(name))
		}
	}

	appendAll(t, s, []byte(`"after"`))
	assert.Equal(t, [][]byte{[]byte(`"after"`)}, payloadsOf(drainAll(t, s)))
	require.NoError(t, s.Close())
	s = openTestStore(t, path, Config{})
	assert.Empty(t, drainAll(t, s), "nothing comes back")
	n, err := s.RequeueDead(context.Background())
	require.NoError(t, err)
	assert.Zero(t, n)
}

func TestPurgeClosedStore(t *testing.T) {
	s := openTestStore(t, storePath(t), Config{})
	require.NoError(t, s.Close())
	_, err := s.Purge(context.Background())
	assert.ErrorIs(t, err, ErrClosed)
}
