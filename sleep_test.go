package syncbreaker

import (
	"context"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// nopStore and nopRepublisher are the least a Breaker needs.
type nopStore struct{}

func (nopStore) Append(context.Context, []byte) error { return nil }
func (nopStore) Replay(context.Context, func(context.Context, Record) error) (ReplayResult, error) {
	return ReplayResult{}, nil
}
func (nopStore) Close() error { return nil }

type nopRepublisher struct{}

func (nopRepublisher) Republish(context.Context, Record) error { return nil }

// sleepyClock is a wall clock that a simulated suspend moves ahead while
// the monotonic clock, which Go's timers count on, stands still: its times
// carry no monotonic reading.
type sleepyClock struct{ slept atomic.Int64 }

func (c *sleepyClock) now() time.Time {
	return time.Now().Round(0).Add(time.Duration(c.slept.Load()))
}

func (c *sleepyClock) sleep(d time.Duration) { c.slept.Add(int64(d)) }

// After a suspend, an open interval or a retry that fell due by the wall
// clock fires within wakeEvery of waking, not when the monotonic clock
// catches up.
func TestRunFiresPromptlyAfterASuspend(t *testing.T) {
	for _, state := range []State{StateOpen, StateClosed} {
		t.Run(state.String(), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var clock sleepyClock
				b, err := New(Config{FailureThreshold: 1, Jitter: -1}, nopStore{}, nopRepublisher{})
				if err != nil {
					t.Fatal(err)
				}
				b.now = clock.now
				ctx, cancel := context.WithCancel(t.Context())
				done := make(chan struct{})
				go func() { defer close(done); _ = b.Run(ctx) }()
				synctest.Wait()
				if state == StateOpen {
					b.RecordFailure() // open for an hour
				}
				before := b.Stats().Replays
				time.Sleep(10 * time.Minute)
				synctest.Wait()
				clock.sleep(time.Hour) // the lid closes for an hour
				time.Sleep(wakeEvery)
				synctest.Wait()
				if state == StateOpen {
					if got := b.State(); got != StateHalfOpen {
						t.Errorf("state %v %v after waking, want half-open", got, wakeEvery)
					}
				} else if b.Stats().Replays == before {
					t.Errorf("the hourly retry, due by the wall clock, did not run within %v of waking", wakeEvery)
				}
				cancel()
				<-done
			})
		})
	}
}
