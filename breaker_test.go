package syncbreaker_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
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

// newBreaker returns a Breaker over store and republisher (fresh in-memory
// ones when nil) with cfg.
func newBreaker(t *testing.T, cfg syncbreaker.Config, store syncbreaker.PendingStore, rep syncbreaker.Republisher) *syncbreaker.Breaker {
	t.Helper()
	if store == nil {
		store = &memStore{}
	}
	if rep == nil {
		rep = &recordingRepublisher{}
	}
	b, err := syncbreaker.New(cfg, store, rep)
	require.NoError(t, err)
	return b
}

// startRun runs b.Run until the returned stop is called; stop checks that
// Run returned nil.
func startRun(t *testing.T, b *syncbreaker.Breaker) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	return func() {
		t.Helper()
		cancel()
		assert.NoError(t, <-done)
	}
}

// failN records n failures.
func failN(b *syncbreaker.Breaker, n int) {
	for range n {
		b.RecordFailure()
	}
}

// changeLog collects state changes delivered to OnStateChange.
type changeLog struct {
	mu      sync.Mutex
	changes []syncbreaker.StateChange
}

func (l *changeLog) add(c syncbreaker.StateChange) {
	l.mu.Lock()
	l.changes = append(l.changes, c)
	l.mu.Unlock()
}

func (l *changeLog) get() []syncbreaker.StateChange {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]syncbreaker.StateChange(nil), l.changes...)
}

// assertChain checks that changes form an unbroken chain starting closed:
// each From is the previous To and no change is to the same state.
func assertChain(t *testing.T, changes []syncbreaker.StateChange) {
	t.Helper()
	prev := syncbreaker.StateClosed
	for i, c := range changes {
		if !assert.Equalf(t, prev, c.From, "change %d From", i) || !assert.NotEqualf(t, c.From, c.To, "change %d", i) {
			return
		}
		prev = c.To
	}
}

func TestStateString(t *testing.T) {
	tests := []struct {
		s    syncbreaker.State
		want string
	}{
		{syncbreaker.StateClosed, "closed"},
		{syncbreaker.StateOpen, "open"},
		{syncbreaker.StateHalfOpen, "half-open"},
		{syncbreaker.State(7), "State(7)"},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, tt.s.String())
	}
}

func TestNewValidation(t *testing.T) {
	tests := []struct {
		name    string
		cfg     syncbreaker.Config
		noStore bool
		noRep   bool
	}{
		{name: "nil store", noStore: true},
		{name: "nil republisher", noRep: true},
		{name: "negative threshold", cfg: syncbreaker.Config{FailureThreshold: -1}},
		{name: "negative interval", cfg: syncbreaker.Config{ResetInterval: -time.Second}},
		{name: "multiplier below 1", cfg: syncbreaker.Config{Multiplier: 0.5}},
		{name: "max below interval", cfg: syncbreaker.Config{ResetInterval: time.Hour, MaxResetInterval: time.Minute}},
		{name: "jitter 1", cfg: syncbreaker.Config{Jitter: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var store syncbreaker.PendingStore = &memStore{}
			var rep syncbreaker.Republisher = &recordingRepublisher{}
			if tt.noStore {
				store = nil
			}
			if tt.noRep {
				rep = nil
			}
			b, err := syncbreaker.New(tt.cfg, store, rep)
			assert.ErrorIs(t, err, syncbreaker.ErrInvalidConfig)
			assert.Nil(t, b)
		})
	}
}

func TestZeroConfigDefaults(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBreaker(t, syncbreaker.Config{Jitter: -1}, nil, nil)
		assert.Equal(t, syncbreaker.StateClosed, b.State())
		failN(b, syncbreaker.DefaultFailureThreshold-1)
		assert.False(t, b.IsOpen(), "one failure below the default threshold")
		b.RecordFailure()
		assert.True(t, b.IsOpen())
		assert.Equal(t, time.Hour, b.Stats().OpenInterval, "default reset interval")
	})
}

func TestClosedOpensAtThresholdAndSuccessResets(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var log changeLog
		b := newBreaker(t, syncbreaker.Config{FailureThreshold: 3, OnStateChange: log.add}, nil, nil)
		failN(b, 2)
		assert.Equal(t, 2, b.Stats().ConsecutiveFailures)
		b.RecordSuccess()
		assert.Equal(t, 0, b.Stats().ConsecutiveFailures)
		failN(b, 2)
		assert.False(t, b.IsOpen(), "success must reset the count")
		b.RecordFailure()
		assert.True(t, b.IsOpen())
		assert.Equal(t, syncbreaker.StateOpen, b.State())
		b.RecordSuccess() // ignored while open
		assert.True(t, b.IsOpen())
		b.RecordFailure() // ignored while open
		st := b.Stats()
		assert.Equal(t, uint64(1), st.Opens)
		assert.Equal(t, time.Now(), st.LastChange)
		require.Len(t, log.get(), 1)
		assert.Equal(t, syncbreaker.StateChange{From: syncbreaker.StateClosed, To: syncbreaker.StateOpen, At: time.Now(), OpenInterval: st.OpenInterval}, log.get()[0])
	})
}

func TestTransitions(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var log changeLog
		b := newBreaker(t, syncbreaker.Config{FailureThreshold: 2, ResetInterval: time.Minute, Jitter: -1, OnStateChange: log.add}, nil, nil)
		stop := startRun(t, b)
		defer stop()

		failN(b, 2)
		assert.Equal(t, syncbreaker.StateOpen, b.State())
		assert.Equal(t, time.Now().Add(time.Minute), b.Stats().OpenUntil)

		time.Sleep(time.Minute)
		synctest.Wait()
		assert.Equal(t, syncbreaker.StateHalfOpen, b.State())
		assert.False(t, b.IsOpen(), "half-open lets probes through")

		b.RecordFailure() // half-open failure re-opens at once
		assert.Equal(t, syncbreaker.StateOpen, b.State())

		assert.Equal(t, 2*time.Minute, b.Stats().OpenInterval, "grown interval")
		time.Sleep(2 * time.Minute)
		synctest.Wait()
		assert.Equal(t, syncbreaker.StateHalfOpen, b.State())
		b.RecordSuccess()
		assert.Equal(t, syncbreaker.StateClosed, b.State())

		want := []syncbreaker.State{syncbreaker.StateOpen, syncbreaker.StateHalfOpen, syncbreaker.StateOpen, syncbreaker.StateHalfOpen, syncbreaker.StateClosed}
		changes := log.get()
		assertChain(t, changes)
		var got []syncbreaker.State
		for _, c := range changes {
			got = append(got, c.To)
		}
		assert.Equal(t, want, got)
	})
}

// The original implementation ran its hourly ticker from process start, so a
// circuit opened at minute 59 closed a minute later.
func TestOpenIntervalCountsFromOpening(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBreaker(t, syncbreaker.Config{FailureThreshold: 1, ResetInterval: time.Hour, Jitter: -1}, nil, nil)
		stop := startRun(t, b)
		defer stop()

		time.Sleep(59 * time.Minute)
		b.RecordFailure()
		time.Sleep(time.Minute) // t=60m: the start-based tick
		synctest.Wait()
		assert.Equal(t, syncbreaker.StateOpen, b.State(), "t=60m")
		time.Sleep(58*time.Minute + 59*time.Second)
		synctest.Wait()
		assert.Equal(t, syncbreaker.StateOpen, b.State(), "t=1h58m59s")
		time.Sleep(time.Second)
		synctest.Wait()
		assert.Equal(t, syncbreaker.StateHalfOpen, b.State(), "t=1h59m")
	})
}

func TestOpenIntervalGrowthAndCap(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBreaker(t, syncbreaker.Config{
			FailureThreshold: 1, ResetInterval: time.Hour, MaxResetInterval: 4 * time.Hour, Jitter: -1,
		}, nil, nil)
		stop := startRun(t, b)
		defer stop()

		reopen := func(want time.Duration) {
			t.Helper()
			b.RecordFailure()
			require.Equal(t, syncbreaker.StateOpen, b.State())
			assert.Equal(t, want, b.Stats().OpenInterval)
			time.Sleep(want - time.Nanosecond)
			synctest.Wait()
			require.Equal(t, syncbreaker.StateOpen, b.State(), "still open just before %v", want)
			time.Sleep(time.Nanosecond)
			synctest.Wait()
			require.Equal(t, syncbreaker.StateHalfOpen, b.State(), "half-open after %v", want)
		}
		for _, d := range []time.Duration{time.Hour, 2 * time.Hour, 4 * time.Hour, 4 * time.Hour} {
			reopen(d)
		}
		b.RecordSuccess() // a close resets the growth
		require.Equal(t, syncbreaker.StateClosed, b.State())
		reopen(time.Hour)
	})
}

// By default the grown interval stays hourly for the default one-hour
// circuit (the first user's daemon retried every hour), and a short
// interval grows to 8 times itself, never past an hour.
func TestOpenIntervalDefaultCapKeepsHourlyHourly(t *testing.T) {
	for _, tt := range []struct {
		reset time.Duration
		want  []time.Duration
	}{
		{time.Hour, []time.Duration{time.Hour, time.Hour, time.Hour}},
		{30 * time.Second, []time.Duration{30 * time.Second, time.Minute, 2 * time.Minute, 4 * time.Minute, 4 * time.Minute}},
		{20 * time.Minute, []time.Duration{20 * time.Minute, 40 * time.Minute, time.Hour, time.Hour}},
		{2 * time.Hour, []time.Duration{2 * time.Hour, 2 * time.Hour}},
	} {
		t.Run(tt.reset.String(), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				b := newBreaker(t, syncbreaker.Config{FailureThreshold: 1, ResetInterval: tt.reset, Jitter: -1}, nil, nil)
				stop := startRun(t, b)
				defer stop()
				for _, want := range tt.want {
					b.RecordFailure()
					require.Equal(t, syncbreaker.StateOpen, b.State())
					assert.Equal(t, want, b.Stats().OpenInterval)
					time.Sleep(want)
					synctest.Wait()
					require.Equal(t, syncbreaker.StateHalfOpen, b.State())
				}
			})
		})
	}
}

func TestOpenIntervalMultiplierOneDisablesGrowth(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBreaker(t, syncbreaker.Config{FailureThreshold: 1, ResetInterval: time.Minute, Multiplier: 1, Jitter: -1}, nil, nil)
		stop := startRun(t, b)
		defer stop()
		for range 3 {
			b.RecordFailure()
			assert.Equal(t, time.Minute, b.Stats().OpenInterval)
			time.Sleep(time.Minute)
			synctest.Wait()
			require.Equal(t, syncbreaker.StateHalfOpen, b.State())
		}
	})
}

func TestOpenIntervalJitterBounds(t *testing.T) {
	tests := []struct {
		name   string
		jitter float64
		lo, hi time.Duration
	}{
		{"default 10%", 0, 54 * time.Minute, 66 * time.Minute},
		{"25%", 0.25, 45 * time.Minute, 75 * time.Minute},
		{"disabled", -1, time.Hour, time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				b := newBreaker(t, syncbreaker.Config{
					FailureThreshold: 1, ResetInterval: time.Hour, Multiplier: 1, Jitter: tt.jitter,
					Rand: rand.New(rand.NewPCG(1, 2)),
				}, nil, nil)
				seen := map[time.Duration]bool{}
				for range 200 {
					b.RecordFailure()
					d := b.Stats().OpenInterval
					assert.GreaterOrEqual(t, d, tt.lo)
					assert.LessOrEqual(t, d, tt.hi)
					seen[d] = true
					b.Reset()
				}
				if tt.lo != tt.hi {
					assert.Greater(t, len(seen), 100, "jitter must spread the intervals")
				}
			})
		})
	}
}

func TestJitterIsDeterministicWithRand(t *testing.T) {
	intervals := func() []time.Duration {
		b := newBreaker(t, syncbreaker.Config{FailureThreshold: 1, Rand: rand.New(rand.NewPCG(7, 7))}, nil, nil)
		var out []time.Duration
		for range 5 {
			b.RecordFailure()
			out = append(out, b.Stats().OpenInterval)
			b.Reset()
		}
		return out
	}
	first := intervals()
	assert.Equal(t, first, intervals())
	assert.NotEqual(t, first[0], first[1])
}

// A Reset at the very instant the open interval ends races Run's tick: in
// either order the circuit must end closed with a consistent history.
func TestResetRacesTick(t *testing.T) {
	for i := range 20 {
		synctest.Test(t, func(t *testing.T) {
			var log changeLog
			b := newBreaker(t, syncbreaker.Config{FailureThreshold: 1, ResetInterval: time.Minute, Jitter: -1, OnStateChange: log.add}, nil, nil)
			stop := startRun(t, b)
			defer stop()
			b.RecordFailure()
			go func() {
				time.Sleep(time.Minute)
				b.Reset()
			}()
			time.Sleep(time.Minute)
			synctest.Wait()
			assert.Equal(t, syncbreaker.StateClosed, b.State(), "run %d", i)
			assertChain(t, log.get())
			// A new opening counts from its own moment, not a stale deadline.
			b.RecordFailure()
			time.Sleep(time.Minute - time.Nanosecond)
			synctest.Wait()
			assert.Equal(t, syncbreaker.StateOpen, b.State())
		})
	}
}

// Many goroutines record outcomes at once: no update may be lost and the
// notified history must be a consistent chain matching the counters.
func TestConcurrentOutcomes(t *testing.T) {
	t.Run("no lost failure", func(t *testing.T) {
		const n = 64
		var log changeLog
		b := newBreaker(t, syncbreaker.Config{FailureThreshold: n + 1, OnStateChange: log.add}, nil, nil)
		var wg sync.WaitGroup
		for range n {
			wg.Go(b.RecordFailure)
		}
		wg.Wait()
		assert.Equal(t, n, b.Stats().ConsecutiveFailures)
		assert.Empty(t, log.get())
		b.RecordFailure()
		assert.True(t, b.IsOpen())
	})
	t.Run("exactly one open", func(t *testing.T) {
		const n = 64
		var log changeLog
		b := newBreaker(t, syncbreaker.Config{FailureThreshold: n / 2, OnStateChange: log.add}, nil, nil)
		var wg sync.WaitGroup
		for range n {
			wg.Go(b.RecordFailure)
		}
		wg.Wait()
		assert.Equal(t, uint64(1), b.Stats().Opens)
		assert.Len(t, log.get(), 1)
	})
	for _, withRun := range []bool{false, true} {
		t.Run(fmt.Sprintf("mixed/run=%v", withRun), func(t *testing.T) {
			mixedOutcomes(t, withRun)
		})
	}
}

// mixedOutcomes races outcomes, resets and Stats from many goroutines and,
// with withRun, Run's ticks on a one-microsecond interval (real time, no
// sleeps: the ticks only add races), then checks the history.
func mixedOutcomes(t *testing.T, withRun bool) {
	{
		const threshold = 4
		var log changeLog
		b := newBreaker(t, syncbreaker.Config{FailureThreshold: threshold, ResetInterval: time.Microsecond, Multiplier: 1, OnStateChange: log.add}, nil, nil)
		stop := func() {}
		if withRun {
			stop = startRun(t, b)
		}
		var wg sync.WaitGroup
		for g := range 8 {
			wg.Go(func() {
				r := rand.New(rand.NewPCG(uint64(g), 1))
				for range 2000 {
					switch r.IntN(10) {
					case 0:
						b.Reset()
					case 1, 2, 3:
						b.RecordSuccess()
					case 4:
						st := b.Stats()
						assert.Less(t, st.ConsecutiveFailures, threshold)
					default:
						b.RecordFailure()
					}
					_ = b.IsOpen()
				}
			})
		}
		wg.Wait()
		stop() // no transition may happen while the history is checked
		changes := log.get()
		assertChain(t, changes)
		var opens uint64
		for _, c := range changes {
			if c.To == syncbreaker.StateOpen {
				opens++
			}
		}
		st := b.Stats()
		assert.Equal(t, opens, st.Opens)
		assert.Greater(t, opens, uint64(0))
		if len(changes) > 0 {
			assert.Equal(t, changes[len(changes)-1].To, st.State)
		}
		assert.Less(t, st.ConsecutiveFailures, threshold)
	}
}

// OnStateChange runs outside the lock: it may read Stats and even cause
// another transition, which is delivered after it, in order.
func TestOnStateChangeReentrantAndOrdered(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var (
			b     *syncbreaker.Breaker
			log   changeLog
			stats []syncbreaker.Stats
		)
		b = newBreaker(t, syncbreaker.Config{
			FailureThreshold: 1, ResetInterval: time.Minute, Jitter: -1,
			OnStateChange: func(c syncbreaker.StateChange) {
				log.add(c)
				stats = append(stats, b.Stats())
				if c.To == syncbreaker.StateOpen && len(log.get()) == 1 {
					b.Reset() // a transition from inside the callback
				}
			},
		}, nil, nil)
		b.RecordFailure()
		changes := log.get()
		require.Len(t, changes, 2)
		assertChain(t, changes)
		assert.Equal(t, syncbreaker.StateClosed, changes[1].To)
		assert.Equal(t, uint64(1), stats[0].Opens, "Stats inside the callback")
		assert.Equal(t, syncbreaker.StateClosed, b.State())
	})
}

func TestOnStateChangePanicDoesNotWedgeDelivery(t *testing.T) {
	var calls int
	b := newBreaker(t, syncbreaker.Config{FailureThreshold: 1, OnStateChange: func(syncbreaker.StateChange) {
		calls++
		if calls == 1 {
			panic("callback bug")
		}
	}}, nil, nil)
	assert.Panics(t, b.RecordFailure)
	b.Reset()
	assert.Equal(t, 2, calls, "delivery goes on after a panicking callback")
}

// An outcome of a call that started before the circuit changed state must
// not move the new state: a slow call sent while closed that finishes once
// the circuit is half-open neither closes nor re-opens it.
func TestStaleOutcomeIgnored(t *testing.T) {
	tests := []struct {
		name    string
		sendErr error
		wantErr error
	}{
		{"success", nil, nil},
		{"failure", errServer, errServer},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				store := &memStore{}
				b := newBreaker(t, syncbreaker.Config{FailureThreshold: 1, ResetInterval: time.Minute, Jitter: -1}, store, nil)
				stop := startRun(t, b)
				defer stop()

				release := make(chan struct{})
				done := make(chan error, 1)
				go func() {
					done <- b.Execute(t.Context(), []byte("slow"), func(context.Context) error {
						<-release
						return tt.sendErr
					})
				}()
				synctest.Wait() // the slow call is in flight, sent while closed
				b.RecordFailure()
				time.Sleep(time.Minute)
				synctest.Wait()
				require.Equal(t, syncbreaker.StateHalfOpen, b.State())

				close(release)
				assert.ErrorIs(t, <-done, tt.wantErr)
				assert.Equal(t, syncbreaker.StateHalfOpen, b.State(), "a stale outcome must not decide the probe")
				assert.Empty(t, store.payloads(), "not open, so not spilled: the caller owns the payload")
			})
		})
	}
}

// Logs carry sizes and record IDs, never payload content.
func TestLoggingNeverShowsPayloads(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var buf bytes.Buffer
		logger := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
		store := &memStore{}
		b := newBreaker(t, syncbreaker.Config{FailureThreshold: 1, ResetInterval: time.Minute, Logger: logger}, store, nil)
		stop := startRun(t, b)
		defer stop()
		secret := "export AWS_SECRET=hunter2"
		require.NoError(t, b.Execute(t.Context(), []byte(secret), func(context.Context) error { return errServer }))
		store.appendErr = errDisk
		require.Error(t, b.SaveForRetry(t.Context(), []byte(secret)))
		store.appendErr = nil
		time.Sleep(2 * time.Minute) // half-open and replay
		synctest.Wait()
		out := buf.String()
		assert.Contains(t, out, "state change")
		assert.Contains(t, out, "replay")
		assert.Contains(t, out, "bytes=25")
		assert.NotContains(t, out, "hunter2")
	})
}

// benchBreaker is a breaker whose republisher waits for settles, so the
// middleware's settle lookup for fresh messages is part of the hot path.
func benchBreaker(tb testing.TB) *syncbreaker.Breaker {
	bus := gochannel.NewGoChannel(gochannel.Config{}, watermill.NopLogger{})
	tb.Cleanup(func() { _ = bus.Close() })
	rep, err := syncbreaker.NewRepublisher(bus, "sync", syncbreaker.RepublisherConfig{SettleTimeout: time.Minute})
	if err != nil {
		tb.Fatal(err)
	}
	br, err := syncbreaker.New(syncbreaker.Config{}, &memStore{}, rep)
	if err != nil {
		tb.Fatal(err)
	}
	return br
}

// The closed-circuit hot path allocates nothing: the README's "zero
// allocations" is asserted here, not only reported by the benchmarks.
func TestClosedHotPathDoesNotAllocate(t *testing.T) {
	br := benchBreaker(t)
	ctx, payload := context.Background(), []byte(`{"cmd":"ls"}`)
	send := func(context.Context) error { return nil }
	if n := testing.AllocsPerRun(100, func() {
		if !br.IsOpen() {
			br.RecordSuccess()
		}
	}); n != 0 {
		t.Errorf("IsOpen+RecordSuccess: %v allocs per call, want 0", n)
	}
	if n := testing.AllocsPerRun(100, func() { _ = br.Execute(ctx, payload, send) }); n != 0 {
		t.Errorf("Execute: %v allocs per call, want 0", n)
	}
	handler := br.Middleware(func(*message.Message) ([]*message.Message, error) { return nil, nil })
	msg := message.NewMessage("1", payload)
	if n := testing.AllocsPerRun(100, func() { _, _ = handler(msg) }); n != 0 {
		t.Errorf("Middleware: %v allocs per call, want 0", n)
	}
}

func BenchmarkClosedIsOpenRecordSuccess(b *testing.B) {
	br := benchBreaker(b)
	b.ReportAllocs()
	for b.Loop() {
		if !br.IsOpen() {
			br.RecordSuccess()
		}
	}
}

func BenchmarkClosedIsOpenRecordSuccessParallel(b *testing.B) {
	br := benchBreaker(b)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if !br.IsOpen() {
				br.RecordSuccess()
			}
		}
	})
}

func BenchmarkExecuteClosedSuccess(b *testing.B) {
	br := benchBreaker(b)
	ctx := context.Background()
	payload := []byte(`{"cmd":"ls"}`)
	send := func(context.Context) error { return nil }
	b.ReportAllocs()
	for b.Loop() {
		if err := br.Execute(ctx, payload, send); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkExecuteClosedSuccessParallel(b *testing.B) {
	br := benchBreaker(b)
	ctx := context.Background()
	payload := []byte(`{"cmd":"ls"}`)
	send := func(context.Context) error { return nil }
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := br.Execute(ctx, payload, send); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func BenchmarkMiddlewareClosedSuccess(b *testing.B) {
	br := benchBreaker(b)
	h := br.Middleware(func(*message.Message) ([]*message.Message, error) { return nil, nil })
	msg := message.NewMessage("id", []byte(`{"cmd":"ls"}`))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := h(msg); err != nil {
			b.Fatal(err)
		}
	}
}

// errServer stands for a failing server in tests.
var errServer = errors.New("server down")
