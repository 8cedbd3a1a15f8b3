package syncbreaker_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/syncbreaker/syncbreaker"
)

// pendingPayloads replays the store at path and returns its payloads.
func pendingPayloads(t *testing.T, path string) map[string]bool {
	t.Helper()
	s, err := syncbreaker.OpenJSONLStore(path, syncbreaker.StoreConfig{})
	require.NoError(t, err)
	defer func() { require.NoError(t, s.Close()) }()
	got := map[string]bool{}
	_, err = s.Replay(context.Background(), func(_ context.Context, r syncbreaker.Record) error {
		got[string(r.Payload)] = true
		return nil
	})
	require.NoError(t, err)
	return got
}

// The first user's cleanup deletes the spill file while the daemon runs:
// 10 appends, the file removed, 10 more, Close, reopen: 20 of 20.
func TestDeletedSpillFileLosesNothing(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("Windows refuses to delete a file the store holds open")
	}
	path := filepath.Join(t.TempDir(), "sync-pending.jsonl")
	s, err := syncbreaker.OpenJSONLStore(path, syncbreaker.StoreConfig{})
	require.NoError(t, err)
	for i := range 20 {
		if i == 10 {
			require.NoError(t, os.Remove(path))
		}
		require.NoError(t, s.Append(context.Background(), fmt.Appendf(nil, `{"n":%d}`, i)))
	}
	require.NoError(t, s.Close())
	assert.Len(t, pendingPayloads(t, path), 20)
}

// 8 Appends racing Close under SyncAlways, 200 trials: an Append returns
// nil exactly when its record is pending after reopening.
func TestAppendRacingCloseNoFalseFailures(t *testing.T) {
	trials := 200
	if testing.Short() {
		trials = 20
	}
	var wrong, failed int
	for trial := range trials {
		path := filepath.Join(t.TempDir(), "p.jsonl")
		s, err := syncbreaker.OpenJSONLStore(path, syncbreaker.StoreConfig{})
		require.NoError(t, err)
		var wg sync.WaitGroup
		errs := make([]error, 8)
		ready := make(chan struct{}, len(errs))
		for i := range errs {
			wg.Go(func() {
				p := fmt.Appendf(nil, `{"t":%d,"i":%d}`, trial, i)
				ready <- struct{}{}
				errs[i] = s.Append(context.Background(), p)
			})
		}
		for range errs {
			<-ready
		}
		require.NoError(t, s.Close())
		wg.Wait()
		got := pendingPayloads(t, path)
		for i, err := range errs {
			if err != nil {
				failed++
				require.ErrorIs(t, err, syncbreaker.ErrStoreClosed)
			}
			if (err == nil) != got[fmt.Sprintf(`{"t":%d,"i":%d}`, trial, i)] {
				wrong++
			}
		}
	}
	t.Logf("%d trials: %d of %d Appends failed, %d answers wrong", trials, failed, trials*8, wrong)
	assert.Zero(t, wrong)
}
