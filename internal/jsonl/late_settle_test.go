package jsonl

import (
	"context"
	"fmt"
	"os"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A record settled late is removed by the next drain without being
// delivered, also after a Close and a reopen (the tombstone is in the
// ledger); readers of the files (pendingctl) no longer count it as
// pending; and once the drain that removed it has committed, the ledger
// forgets the tombstone.
func TestSettleLateRemovesWithoutDelivery(t *testing.T) {
	path := storePath(t)
	s := openTestStore(t, path, Config{})
	appendAll(t, s, numbered(3)...)
	var ids []string
	_, err := s.Replay(t.Context(), func(_ context.Context, r Record) error {
		ids = append(ids, r.ID)
		return fmt.Errorf("gave up waiting: %w", ErrNotAttempted)
	})
	require.NoError(t, err)
	require.Len(t, ids, 3)

	s.SettleLate(ids[1])
	s.SettleLate("0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b") // not in the store: harmless
	require.NoError(t, s.Close())
	ledger, err := os.ReadFile(path + ledgerSuffix)
	require.NoError(t, err)
	assert.Contains(t, string(ledger), ids[1], "Close wrote the tombstone")
	d, err := ReadDelivered(path)
	require.NoError(t, err)
	assert.Contains(t, d.IDs, ids[1], "pendingctl sees it delivered")

	s = openTestStore(t, path, Config{})
	var got [][]byte
	res, err := s.Replay(t.Context(), func(_ context.Context, r Record) error {
		got = append(got, r.Payload)
		return nil
	})
	require.NoError(t, err)
	assert.Equal(t, [][]byte{numbered(3)[0], numbered(3)[2]}, got)
	assert.Equal(t, 3, res.Republished, "the late one is removed as republished")
	assert.Zero(t, s.Stats().PendingRecords)
	assert.EqualValues(t, 3, s.Stats().Republished, "the late one counts as republished")
	require.NoError(t, s.Close())
	ledger, err = os.ReadFile(path + ledgerSuffix)
	require.NoError(t, err)
	assert.NotContains(t, string(ledger), ids[1], "dropped once its record is gone")
	assert.Contains(t, string(ledger), "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b", "an unknown ID waits for eviction")
}

// The tombstones are bounded: the oldest go first, which can only mean a
// record delivered again.
func TestTombstonesBounded(t *testing.T) {
	var tb tombstones
	for i := range maxTombstones + 10 {
		tb.add(fmt.Sprint(i))
	}
	assert.Len(t, tb.order, maxTombstones)
	assert.Len(t, tb.ids, maxTombstones)
	assert.NotContains(t, tb.ids, "9")
	assert.Contains(t, tb.ids, "10")
	tb.drop([]string{"10", "11"})
	assert.Len(t, tb.order, maxTombstones-2)
	assert.Equal(t, "12", tb.order[0])
}
