package jsonl

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// ReplayWindow keeps up to window calls of fn running at once, and applies
// their verdicts in the records' order: the refused records stay in order
// with one more attempt, the accepted ones go, the not-attempted ones stay
// as they were, whatever order the calls end in.
func TestReplayWindowAppliesVerdictsInOrder(t *testing.T) {
	for _, window := range []int{1, 4} {
		t.Run(fmt.Sprint("window=", window), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				s := openTestStore(t, storePath(t), Config{SegmentBytes: 200})
				appendAll(t, s, numbered(20)...)
				var mu sync.Mutex
				running, peak := 0, 0
				res, err := s.ReplayWindow(t.Context(), func() int { return window }, func(_ context.Context, r Record) error {
					mu.Lock()
					running++
					peak = max(peak, running)
					mu.Unlock()
					var n int
					_, _ = fmt.Sscanf(string(r.Payload), `{"n":%d}`, &n)
					time.Sleep(time.Duration(20-n) * time.Millisecond) // later records end first
					mu.Lock()
					running--
					mu.Unlock()
					switch n % 4 {
					case 1:
						return errors.New("refused")
					case 2:
						return fmt.Errorf("timed out: %w", ErrNotAttempted)
					}
					return nil
				})
				require.NoError(t, err)
				assert.Equal(t, window, peak, "calls at once")
				assert.Equal(t, 10, res.Republished)
				assert.Equal(t, 5, res.Failed)
				assert.Equal(t, 5, res.Skipped)

				var want [][]byte
				var attempts []int
				for n, p := range numbered(20) {
					if n%4 == 1 || n%4 == 2 {
						want = append(want, p)
						attempts = append(attempts, map[int]int{1: 1, 2: 0}[n%4])
					}
				}
				got := drainAll(t, s)
				assert.Equal(t, want, payloadsOf(got), "kept in order")
				var gotAttempts []int
				for _, r := range got {
					gotAttempts = append(gotAttempts, r.Attempts)
				}
				assert.Equal(t, attempts, gotAttempts)
			})
		})
	}
}

// A replay whose ctx ends with calls of fn in flight waits for them
// before it returns, starts no new one, and keeps every record whose call
// did not accept it.
func TestReplayWindowStopsCleanly(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := openTestStore(t, storePath(t), Config{})
		appendAll(t, s, numbered(12)...)
		ctx, cancel := context.WithCancel(t.Context())
		var mu sync.Mutex
		seen, running := 0, 0
		_, err := s.ReplayWindow(ctx, func() int { return 3 }, func(ctx context.Context, r Record) error {
			mu.Lock()
			seen++
			running++
			if seen == 3 {
				cancel() // the window is full: three calls wait on ctx
			}
			mu.Unlock()
			<-ctx.Done()
			mu.Lock()
			running--
			mu.Unlock()
			return ctx.Err()
		})
		require.ErrorIs(t, err, context.Canceled)
		mu.Lock()
		assert.Zero(t, running, "no call outlives the replay")
		assert.Equal(t, 3, seen, "no new call once ctx ended")
		mu.Unlock()
		got := drainAll(t, s)
		assert.Equal(t, numbered(12), payloadsOf(got), "every record kept, in order")
		for _, r := range got {
			assert.Zero(t, r.Attempts, "a stop is not an attempt")
		}
	})
}
