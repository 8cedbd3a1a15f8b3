package benchmarks

import (
	"context"
	"testing"
)

// TestHotPathImplsAreBreakers checks that every implementation benchmarked
// on the hot path is a working breaker as configured here: it lets calls
// through while the server answers, and stops calling it once the server
// has failed enough. A comparison against a misconfigured peer that never
// trips would measure nothing.
func TestHotPathImplsAreBreakers(t *testing.T) {
	ctx := context.Background()
	fail := func() error { return errSend }
	tests := []struct {
		name string
		// call guards one call to send and reports whether send ran.
		call func(send func() error) (ran bool)
	}{
		{"syncbreaker-Execute", func() func(func() error) bool {
			br := newSyncbreaker(t)
			return func(send func() error) bool {
				ran := false
				_ = br.Execute(ctx, payload1K, func(context.Context) error { ran = true; return send() })
				return ran
			}
		}()},
		{"syncbreaker-IsOpen+Record", func() func(func() error) bool {
			br := newSyncbreaker(t)
			return func(send func() error) bool {
				if br.IsOpen() {
					return false
				}
				if send() != nil {
					br.RecordFailure()
				} else {
					br.RecordSuccess()
				}
				return true
			}
		}()},
		{"gobreaker", func() func(func() error) bool {
			gb := newGobreaker()
			return func(send func() error) bool {
				ran := false
				_, _ = gb.Execute(func() (struct{}, error) { ran = true; return struct{}{}, send() })
				return ran
			}
		}()},
		{"failsafe", func() func(func() error) bool {
			cb := newFailsafe()
			return func(send func() error) bool {
				if !cb.TryAcquirePermit() {
					return false
				}
				if send() != nil {
					cb.RecordFailure()
				} else {
					cb.RecordSuccess()
				}
				return true
			}
		}()},
		{"go-resiliency", func() func(func() error) bool {
			rs := newResiliency()
			return func(send func() error) bool {
				ran := false
				_ = rs.Run(func() error { ran = true; return send() })
				return ran
			}
		}()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for i := range 100 {
				if !tt.call(func() error { return nil }) {
					t.Fatalf("success %d: send was not called on a closed circuit", i)
				}
			}
			for range 20 {
				tt.call(fail)
			}
			if tt.call(func() error { return nil }) {
				t.Fatal("send was called after 20 consecutive failures: the breaker never opened")
			}
		})
	}
}
