package syncbreaker_test

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/gochannel"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/syncbreaker/syncbreaker"
)

// The half-open probe limit (Config.HalfOpenMaxProbes): a half-open epoch
// lasts until its first outcome; it admits that many calls and handles the
// rest as if the circuit were open; admissions expire after
// HalfOpenProbeTimeout with no outcome; Execute and Middleware give theirs
// back when a send ends without one.

// halfOpenBreaker returns a breaker over store and rep (fresh in-memory
// ones when nil) with cfg, one failure from open and a one-minute open
// interval, brought half-open by Run. It must run in a synctest bubble.
func halfOpenBreaker(t *testing.T, cfg syncbreaker.Config, store syncbreaker.PendingStore, rep syncbreaker.Republisher) *syncbreaker.Breaker {
	t.Helper()
	cfg.FailureThreshold, cfg.ResetInterval, cfg.Multiplier, cfg.Jitter = 1, time.Minute, 1, -1
	b := newBreaker(t, cfg, store, rep)
	toState(t, b, syncbreaker.StateHalfOpen, 1)
	return b
}

// reopenAndWait re-opens b and waits out the one-minute open interval of a
// halfOpenBreaker.
func reopenAndWait(t *testing.T, b *syncbreaker.Breaker) {
	t.Helper()
	b.RecordFailure()
	require.Equal(t, syncbreaker.StateOpen, b.State())
	time.Sleep(time.Minute)
	synctest.Wait()
	require.Equal(t, syncbreaker.StateHalfOpen, b.State())
}

func TestHalfOpenConfigValidation(t *testing.T) {
	tests := []struct {
		name  string
		cfg   syncbreaker.Config
		field string // "" means valid
	}{
		{name: "HalfOpenMaxProbes at its limit", cfg: syncbreaker.Config{HalfOpenMaxProbes: math.MaxInt32}},
		{name: "long HalfOpenProbeTimeout", cfg: syncbreaker.Config{HalfOpenProbeTimeout: math.MaxInt64}},
		{name: "negative HalfOpenMaxProbes", cfg: syncbreaker.Config{HalfOpenMaxProbes: -1}, field: "HalfOpenMaxProbes"},
		{name: "HalfOpenMaxProbes over MaxInt32", cfg: syncbreaker.Config{HalfOpenMaxProbes: math.MaxInt32 + 1}, field: "HalfOpenMaxProbes"},
		{name: "negative HalfOpenProbeTimeout", cfg: syncbreaker.Config{HalfOpenProbeTimeout: -time.Second}, field: "HalfOpenProbeTimeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := syncbreaker.New(tt.cfg, &memStore{}, &recordingRepublisher{})
			if tt.field == "" {
				require.NoError(t, err)
				require.NotNil(t, b)
				return
			}
			assert.Nil(t, b)
			assertInvalidConfig(t, err, tt.field)
		})
	}
}

// IsOpen admits the first N calls of an epoch and reports open to the
// rest. The count belongs to the epoch: an outcome ends it and the next
// half-open epoch counts afresh, with nothing given back.
func TestHalfOpenIsOpenAdmitsFirstN(t *testing.T) {
	for _, cfgProbes := range []int{0, 1, 3} {
		want := max(cfgProbes, syncbreaker.DefaultHalfOpenMaxProbes)
		t.Run(fmt.Sprintf("HalfOpenMaxProbes=%d", cfgProbes), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				b := halfOpenBreaker(t, syncbreaker.Config{HalfOpenMaxProbes: cfgProbes}, nil, nil)
				for round, outcome := range []func(){b.RecordSuccess, b.RecordFailure} {
					if round > 0 {
						b.RecordFailure() // closed -> open
						time.Sleep(time.Minute)
						synctest.Wait()
						require.Equal(t, syncbreaker.StateHalfOpen, b.State())
					}
					before := b.Stats()
					for i := range want {
						assert.False(t, b.IsOpen(), "epoch %d: call %d is admitted", round, i)
					}
					for i := range 3 {
						assert.True(t, b.IsOpen(), "epoch %d: call %d beyond the limit", round, want+i)
					}
					st := b.Stats()
					assert.Equal(t, syncbreaker.StateHalfOpen, st.State)
					assert.Equal(t, want, st.ProbesInFlight)
					assert.Zero(t, st.ConsecutiveFailures, "the count bits are admissions while half-open")
					assert.Equal(t, uint64(want), st.ProbesAdmitted-before.ProbesAdmitted)
					assert.Equal(t, uint64(3), st.ProbesRejected-before.ProbesRejected)

					outcome() // the first outcome ends the epoch; no release needed
					assert.NotEqual(t, syncbreaker.StateHalfOpen, b.State())
					assert.Zero(t, b.Stats().ProbesInFlight)
				}
				assert.Equal(t, syncbreaker.StateOpen, b.State())
				assert.True(t, b.IsOpen())
				// Closed: no limit, and the closed path takes no admission.
				b.Reset()
				for range 10 {
					assert.False(t, b.IsOpen())
				}
				assert.Equal(t, uint64(2*want), b.Stats().ProbesAdmitted)
			})
		})
	}
}

// Admissions nobody ends expire HalfOpenProbeTimeout after they ran out:
// a handler that calls IsOpen and never records an outcome cannot keep the
// breaker spilling everything. The expiry is logged, as a hint that a
// handler records no outcome.
func TestHalfOpenProbeExpiry(t *testing.T) {
	tests := []struct {
		name    string
		probes  int
		timeout time.Duration
	}{
		{"default timeout", 1, 0},
		{"30s", 1, 30 * time.Second},
		{"3 probes", 3, 30 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var logs bytes.Buffer
				var logMu sync.Mutex
				b := halfOpenBreaker(t, syncbreaker.Config{
					HalfOpenMaxProbes: tt.probes, HalfOpenProbeTimeout: tt.timeout,
					Logger: slog.New(slog.NewTextHandler(&lockedWriter{w: &logs, mu: &logMu}, nil)),
				}, nil, nil)
				timeout := cmp.Or(tt.timeout, syncbreaker.DefaultHalfOpenProbeTimeout)

				// The timeout counts from the moment the admissions ran out,
				// not from the first one.
				for range tt.probes - 1 {
					require.False(t, b.IsOpen())
				}
				time.Sleep(timeout / 2)
				require.False(t, b.IsOpen(), "the last admission")
				assert.True(t, b.IsOpen())
				time.Sleep(timeout - time.Nanosecond)
				assert.True(t, b.IsOpen(), "not expired yet")
				time.Sleep(time.Nanosecond)
				for i := range tt.probes {
					assert.False(t, b.IsOpen(), "expired: call %d is a new probe", i)
				}
				assert.True(t, b.IsOpen(), "the new admissions are limited too")
				st := b.Stats()
				assert.Equal(t, syncbreaker.StateHalfOpen, st.State)
				assert.Equal(t, uint64(1), st.ProbesExpired)
				assert.Equal(t, tt.probes, st.ProbesInFlight)

				b.RecordSuccess()
				assert.Equal(t, syncbreaker.StateClosed, b.State())
				logMu.Lock()
				defer logMu.Unlock()
				assert.Equal(t, 1, bytes.Count(logs.Bytes(), []byte("probes expired")), logs.String())
			})
		})
	}
}

// A probe through Execute that outlives its admission no longer decides
// (as a call that started before a state change); a probe admitted after
// the expiry does.
func TestHalfOpenExpiredExecuteProbeDoesNotDecide(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := halfOpenBreaker(t, syncbreaker.Config{HalfOpenProbeTimeout: 30 * time.Second}, nil, nil)
		release := make(chan struct{})
		done := make(chan error, 1)
		go func() {
			done <- b.Execute(t.Context(), []byte("hung"), func(context.Context) error {
				<-release
				return nil
			})
		}()
		synctest.Wait()
		assert.True(t, b.IsOpen(), "the hung probe holds the only admission")
		time.Sleep(30 * time.Second)
		assert.False(t, b.IsOpen(), "its admission expired: a new probe")

		close(release)
		require.NoError(t, <-done)
		assert.Equal(t, syncbreaker.StateHalfOpen, b.State(), "the expired probe's success does not close the circuit")
		b.RecordSuccess() // the new probe's outcome
		assert.Equal(t, syncbreaker.StateClosed, b.State())
	})
}

// Execute and Middleware beyond the limit: handled as if open (spilled,
// nil returned so the message is acked), never sent, never lost.
func TestHalfOpenBeyondTheLimitSpills(t *testing.T) {
	for _, iface := range []string{"Execute", "Middleware"} {
		t.Run(iface, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				store := &memStore{}
				b := halfOpenBreaker(t, syncbreaker.Config{}, store, nil)
				require.False(t, b.IsOpen(), "a probe is in flight")

				var err error
				switch iface {
				case "Execute":
					err = b.Execute(t.Context(), []byte("beyond"), func(context.Context) error {
						t.Error("a call beyond the limit must not be sent")
						return nil
					})
				case "Middleware":
					var produced []*message.Message
					produced, err = b.Middleware(func(*message.Message) ([]*message.Message, error) {
						t.Error("a message beyond the limit must not be handled")
						return nil, nil
					})(message.NewMessage("fresh", []byte("beyond")))
					assert.Nil(t, produced)
				}
				require.NoError(t, err, "handled: the message is acked")
				assert.Equal(t, []string{"beyond"}, store.payloads())
				st := b.Stats()
				assert.Equal(t, uint64(1), st.Spilled)
				assert.Equal(t, uint64(1), st.ProbesRejected)
				assert.Equal(t, syncbreaker.StateHalfOpen, st.State)
			})
		})
	}
}

// Execute and Middleware give their admission back when the send ends
// with no outcome: a Permanent error, an error IsFailure rejects, the
// caller's context ending, a panic. The next call is then admitted.
func TestHalfOpenProbeGivesItsAdmissionBack(t *testing.T) {
	ends := []string{"permanent", "not-failure", "cancelled", "panic"}
	for _, iface := range []string{"Execute", "Middleware"} {
		for _, end := range ends {
			t.Run(iface+"/"+end, func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) {
					store := &memStore{}
					b := halfOpenBreaker(t, syncbreaker.Config{
						IsFailure: func(err error) bool { return !errors.Is(err, errClient) },
					}, store, nil)
					ctx, cancel := context.WithCancel(t.Context())
					defer cancel()
					send := func(ctx context.Context) error {
						switch end {
						case "permanent":
							return syncbreaker.Permanent(errClient)
						case "not-failure":
							return fmt.Errorf("post: %w", errClient)
						case "cancelled":
							cancel()
							return ctx.Err()
						default:
							panic("send bug")
						}
					}
					call := func() error {
						if iface == "Execute" {
							return b.Execute(ctx, []byte("probe"), send)
						}
						msg := message.NewMessage("id", []byte("probe"))
						msg.SetContext(ctx)
						_, err := b.Middleware(func(msg *message.Message) ([]*message.Message, error) {
							return nil, send(msg.Context())
						})(msg)
						return err
					}
					if end == "panic" {
						assert.PanicsWithValue(t, "send bug", func() { _ = call() }, "the panic goes on")
					} else {
						assert.Error(t, call(), "the caller gets the error and keeps the payload")
					}
					assert.Empty(t, store.payloads(), "not spilled")
					st := b.Stats()
					assert.Equal(t, syncbreaker.StateHalfOpen, st.State, "no outcome")
					assert.Zero(t, st.ProbesInFlight, "the admission was given back")

					sent := false
					require.NoError(t, b.Execute(t.Context(), []byte("next"), func(context.Context) error {
						sent = true
						return nil
					}))
					assert.True(t, sent, "the next call is admitted")
					assert.Equal(t, syncbreaker.StateClosed, b.State())
				})
			})
		}
	}
}

// A republished message that meets the limit in the middleware is settled
// as not handled because of an open circuit: the record stays pending in
// its place, no attempt counted, nothing spilled again under a new ID.
func TestMiddlewareRepublishedBeyondTheLimitStaysPending(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := &memStore{}
		rig := newSettleRig(t, gochannel.Config{}, time.Hour)
		b := halfOpenBreaker(t, syncbreaker.Config{}, store, rig.rep)
		done := rig.republishAsync(t.Context(), testRecords(1)[0])
		msg := <-rig.msgs
		require.False(t, b.IsOpen(), "a fresh call took the only admission first")

		produced, err := b.Middleware(func(*message.Message) ([]*message.Message, error) {
			t.Error("the handler must not run beyond the limit")
			return nil, nil
		})(msg)
		msg.Ack()
		require.NoError(t, err, "acked, never nacked")
		assert.Nil(t, produced)
		rerr := <-done
		assert.ErrorIs(t, rerr, syncbreaker.ErrNotHandled)
		assert.ErrorIs(t, rerr, syncbreaker.ErrOpen, "handled as if open: not an attempt")
		assert.Empty(t, store.records(), "not spilled again")
	})
}

// The same through RetryPending and a real store, for both wirings: the
// record meets the limit (a fresh call takes the admission just before it
// is published), stays in place with its ID and no attempt, and nothing is
// appended.
func TestReplayRecordBeyondTheLimitStaysInPlace(t *testing.T) {
	for _, wiring := range []string{"middleware", "by hand"} {
		t.Run(wiring, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				store := &memStore{}
				bus := newGoChannel(t, gochannel.Config{})
				msgs, err := bus.Subscribe(t.Context(), testTopic)
				require.NoError(t, err)
				var b *syncbreaker.Breaker
				rep := newTestRepublisher(t, bus, syncbreaker.RepublisherConfig{Rate: 1000, SettleTimeout: time.Hour,
					Prepare: func(*message.Message, syncbreaker.Record) {
						assert.False(t, b.IsOpen(), "the fresh call is admitted")
					}})
				b = halfOpenBreaker(t, syncbreaker.Config{}, store, rep)
				var handle func(*message.Message) error
				switch wiring {
				case "middleware":
					h := b.Middleware(func(*message.Message) ([]*message.Message, error) {
						t.Error("the handler must not run beyond the limit")
						return nil, nil
					})
					handle = func(msg *message.Message) error { _, err := h(msg); return err }
				default:
					handle = func(msg *message.Message) error {
						if b.IsOpen() {
							return b.SaveForRetry(msg.Context(), msg.Payload)
						}
						t.Error("the send must not happen beyond the limit")
						return nil
					}
				}
				go func() {
					for msg := range msgs {
						err := handle(msg)
						if b.Settle(msg, err) || err == nil {
							msg.Ack()
						} else {
							msg.Nack()
						}
					}
				}()
				for _, p := range []string{`"a"`, `"b"`} {
					require.NoError(t, store.Append(t.Context(), []byte(p)))
				}
				before := store.records()

				res, err := b.RetryPending(t.Context())
				require.Error(t, err, "the round stops, as for an open circuit")
				if wiring == "middleware" {
					assert.ErrorIs(t, err, syncbreaker.ErrOpen)
				}
				assert.Zero(t, res.Republished)
				assert.Equal(t, before, store.records(), "both records in place, same IDs, no attempt")
				if wiring == "middleware" {
					assert.Equal(t, 2, appendedCount(store), "nothing spilled again")
					assert.Zero(t, b.Stats().Spilled)
				} else {
					assert.Equal(t, 3, appendedCount(store), "the handler's re-spill, discarded as a copy")
				}
				assert.Equal(t, syncbreaker.StateHalfOpen, b.State())
			})
		})
	}
}

func appendedCount(s *memStore) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.appended
}

// burstInterfaces are the three ways to drive the breaker around a send:
// by hand through the CircuitBreaker interface, Execute, and Middleware.
// call sends payload through g under b, as a daemon's handler would.
var burstInterfaces = []struct {
	name string
	call func(b *syncbreaker.Breaker, payload []byte, g *serverGate) error
}{
	{"IsOpen+Record", func(b *syncbreaker.Breaker, payload []byte, g *serverGate) error {
		ctx := context.Background()
		if b.IsOpen() {
			return b.SaveForRetry(ctx, payload)
		}
		if err := g.send(payload); err != nil {
			b.RecordFailure()
			return b.SaveForRetry(ctx, payload)
		}
		b.RecordSuccess()
		return nil
	}},
	{"Execute", func(b *syncbreaker.Breaker, payload []byte, g *serverGate) error {
		return b.Execute(context.Background(), payload, func(context.Context) error { return g.send(payload) })
	}},
	{"Middleware", func(b *syncbreaker.Breaker, payload []byte, g *serverGate) error {
		_, err := b.Middleware(func(msg *message.Message) ([]*message.Message, error) {
			return nil, g.send(msg.Payload)
		})(message.NewMessage(watermill.NewUUID(), payload))
		return err
	}},
}

// serverGate is a server that holds every send until released, then
// answers err.
type serverGate struct {
	release chan struct{}
	err     error

	mu   sync.Mutex
	sent []string
}

func (g *serverGate) send(payload []byte) error {
	g.mu.Lock()
	g.sent = append(g.sent, string(payload))
	g.mu.Unlock()
	<-g.release
	return g.err
}

// spyStore records every payload whose Append returned nil.
type spyStore struct {
	syncbreaker.PendingStore
	mu       sync.Mutex
	appended []string
}

func (s *spyStore) Append(ctx context.Context, payload []byte) error {
	err := s.PendingStore.Append(ctx, payload)
	if err == nil {
		s.mu.Lock()
		s.appended = append(s.appended, string(payload))
		s.mu.Unlock()
	}
	return err
}

func (s *spyStore) since(n int) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.appended[n:])
}

// A burst of concurrent calls on each interface, epoch after epoch: at most
// N are sent per epoch (exactly N here, since every call arrives before
// the first outcome), the rest are spilled, and every payload is either
// delivered or in the store. Epochs alternate a success (closed, then
// opened again) and a failure (re-opened: the probes are spilled too).
func TestHalfOpenConcurrentBurst(t *testing.T) {
	const calls, epochs = 64, 6
	for _, iface := range burstInterfaces {
		for _, probes := range []int{1, 3} {
			t.Run(fmt.Sprintf("%s/probes=%d", iface.name, probes), func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) {
					store := &spyStore{PendingStore: &memStore{}}
					b := halfOpenBreaker(t, syncbreaker.Config{HalfOpenMaxProbes: probes}, store, nil)
					var sentTotal, spilledTotal int
					for epoch := range epochs {
						if epoch > 0 {
							if b.State() == syncbreaker.StateClosed {
								reopenAndWait(t, b)
							} else {
								time.Sleep(time.Minute)
								synctest.Wait()
								require.Equal(t, syncbreaker.StateHalfOpen, b.State())
							}
						}
						g := &serverGate{release: make(chan struct{})}
						failing := epoch%2 == 1
						if failing {
							g.err = errServer
						}
						mark := len(store.since(0))
						var wg sync.WaitGroup
						for i := range calls {
							payload := fmt.Appendf(nil, "epoch %d call %d", epoch, i)
							wg.Go(func() { assert.NoError(t, iface.call(b, payload, g)) })
						}
						synctest.Wait() // every call is at the server, or spilled and returned
						g.mu.Lock()
						sent := slices.Clone(g.sent)
						g.mu.Unlock()
						spilled := store.since(mark)
						assert.Len(t, sent, probes, "epoch %d: sent", epoch)
						assert.Len(t, spilled, calls-probes, "epoch %d: spilled", epoch)
						sentTotal += len(sent)
						spilledTotal += len(spilled)

						close(g.release)
						wg.Wait()
						handled := store.since(mark)
						if failing {
							assert.Equal(t, syncbreaker.StateOpen, b.State())
						} else {
							assert.Equal(t, syncbreaker.StateClosed, b.State())
							handled = append(handled, sent...) // delivered
						}
						slices.Sort(handled)
						var all []string
						for i := range calls {
							all = append(all, fmt.Sprintf("epoch %d call %d", epoch, i))
						}
						slices.Sort(all)
						assert.Equal(t, all, handled, "epoch %d: every payload delivered or spilled, once", epoch)
					}
					st := b.Stats()
					assert.Equal(t, uint64(epochs*probes), st.ProbesAdmitted)
					assert.Equal(t, uint64(epochs*(calls-probes)), st.ProbesRejected)
					t.Logf("%s, %d probes: %d epochs of %d concurrent calls: %d sent, %d spilled beyond the limit",
						iface.name, probes, epochs, calls, sentTotal, spilledTotal)
				})
			})
		}
	}
}

// While half-open, a replay publishes one record and waits for its probe
// to end before the next, even through a republisher that does not wait
// for settles; with nobody to answer, the next record goes once
// HalfOpenProbeTimeout has passed.
func TestHalfOpenReplayPacesOneProbeAtATime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := seeded(t, "a", "b", "c")
		rep := &recordingRepublisher{}
		b := newBreaker(t, syncbreaker.Config{FailureThreshold: 1, ResetInterval: time.Hour, Jitter: -1,
			HalfOpenProbeTimeout: 30 * time.Second}, store, rep)
		stop := startRun(t, b)
		defer stop()
		b.RecordFailure()

		time.Sleep(time.Hour)
		synctest.Wait()
		require.Equal(t, syncbreaker.StateHalfOpen, b.State())
		assert.Equal(t, []string{"r1"}, rep.republished())
		time.Sleep(30*time.Second - time.Nanosecond)
		synctest.Wait()
		assert.Equal(t, []string{"r1"}, rep.republished(), "r1's probe may still run")
		time.Sleep(time.Nanosecond)
		synctest.Wait()
		assert.Equal(t, []string{"r1", "r2"}, rep.republished())

		b.RecordFailure() // r2's probe failed: re-open, the round stops
		synctest.Wait()
		assert.Equal(t, []string{"c"}, store.payloads())
	})
}

// A replay that finds a probe in flight waits for it to end before it
// publishes: with the probe's success the whole backlog goes; after its
// expiry the first record becomes the probe.
func TestHalfOpenReplayWaitsForAProbeInFlight(t *testing.T) {
	for _, end := range []string{"success", "expiry"} {
		t.Run(end, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				store := &memStore{}
				rig := newSettleRig(t, gochannel.Config{}, time.Hour)
				b := halfOpenBreaker(t, syncbreaker.Config{HalfOpenProbeTimeout: 30 * time.Second}, store, rig.rep)
				var delivered []string
				var mu sync.Mutex
				handler := b.Middleware(func(msg *message.Message) ([]*message.Message, error) {
					mu.Lock()
					delivered = append(delivered, string(msg.Payload))
					mu.Unlock()
					return nil, nil
				})
				go func() {
					for msg := range rig.msgs {
						_, _ = handler(msg)
						msg.Ack()
					}
				}()
				require.False(t, b.IsOpen(), "a fresh probe is in flight")
				for _, p := range []string{"a", "b"} {
					require.NoError(t, store.Append(t.Context(), []byte(p)))
				}
				done := make(chan error, 1)
				go func() {
					_, err := b.RetryPending(t.Context())
					done <- err
				}()
				synctest.Wait()
				mu.Lock()
				assert.Empty(t, delivered, "nothing published while the probe runs")
				mu.Unlock()

				if end == "success" {
					b.RecordSuccess()
				} else {
					time.Sleep(30 * time.Second)
				}
				require.NoError(t, <-done)
				assert.Equal(t, []string{"a", "b"}, delivered)
				assert.Empty(t, store.records())
				assert.Equal(t, syncbreaker.StateClosed, b.State(), "a's probe closed the circuit")
			})
		})
	}
}

// A handler that treats an answer as permanent and records no outcome (by
// hand, as a handler does for a 4xx) holds its admission: the round waits for it to
// expire instead of publishing a record that would meet the limit, then
// goes on; the refused record is dead-lettered, the next one closes the
// circuit.
func TestHalfOpenReplayAfterAProbeWithNoOutcome(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := &memStore{}
		rig := newSettleRig(t, gochannel.Config{}, time.Hour)
		b := halfOpenBreaker(t, syncbreaker.Config{HalfOpenProbeTimeout: 30 * time.Second}, store, rig.rep)
		type delivery struct {
			payload string
			at      time.Time
		}
		var (
			mu        sync.Mutex
			delivered []delivery
		)
		go func() {
			for msg := range rig.msgs {
				var err error
				switch {
				case b.IsOpen():
					err = b.SaveForRetry(msg.Context(), msg.Payload)
				case string(msg.Payload) == "rejected":
					err = syncbreaker.Permanent(errClient) // a 4xx: no outcome recorded
				default:
					mu.Lock()
					delivered = append(delivered, delivery{string(msg.Payload), time.Now()})
					mu.Unlock()
					b.RecordSuccess()
				}
				if b.Settle(msg, err) || err == nil {
					msg.Ack()
				} else {
					msg.Nack()
				}
			}
		}()
		for _, p := range []string{"rejected", "ok"} {
			require.NoError(t, store.Append(t.Context(), []byte(p)))
		}
		start := time.Now()
		res, err := b.RetryPending(t.Context())
		require.NoError(t, err)
		assert.Equal(t, 1, res.Republished)
		assert.Equal(t, 1, res.DeadLettered)
		require.Len(t, delivered, 1)
		assert.Equal(t, "ok", delivered[0].payload)
		assert.Equal(t, 30*time.Second, delivered[0].at.Sub(start), "after the admission expired")
		assert.Equal(t, syncbreaker.StateClosed, b.State())
		assert.Equal(t, uint64(1), b.Stats().ProbesExpired)
		assert.Zero(t, appendedCount(store)-2, "nothing spilled again")
	})
}

// The half-open paths allocate nothing either.
func TestHalfOpenAdmissionDoesNotAllocate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := halfOpenBreaker(t, syncbreaker.Config{}, nil, nil)
		require.False(t, b.IsOpen())
		if n := testing.AllocsPerRun(100, func() { _ = b.IsOpen() }); n != 0 {
			t.Errorf("IsOpen beyond the limit: %v allocs per call, want 0", n)
		}
	})
}
