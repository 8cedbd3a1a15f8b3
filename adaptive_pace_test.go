package syncbreaker_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/gochannel"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/time/rate"

	"github.com/syncbreaker/syncbreaker"
)

var (
	errSim503  = errors.New("503 Service Unavailable")
	errSimDown = errors.New("connection refused")
)

// simServer takes capacity requests a second (a token bucket holding a
// tenth of a second's worth) and answers 503 beyond it, which the handler
// marks Overloaded; while down it refuses every connection. Each request
// takes latency. Time is the synctest bubble's.
type simServer struct {
	lim     *rate.Limiter
	latency time.Duration
	start   time.Time
	down    atomic.Bool

	mu       sync.Mutex
	accepted map[string]int
	seeded   int // distinct seeded payloads accepted
	requests int
	refused  int // 503
	failed   int // while down
	perSec   map[int64]int
}

func newSimServer(capacity float64, latency time.Duration) *simServer {
	return &simServer{
		lim:      rate.NewLimiter(rate.Limit(capacity), max(1, int(capacity/10))),
		latency:  latency,
		start:    time.Now(),
		accepted: map[string]int{},
		perSec:   map[int64]int{},
	}
}

func (s *simServer) post(payload []byte) error {
	now := time.Now()
	s.mu.Lock()
	s.requests++
	s.perSec[int64(now.Sub(s.start)/time.Second)]++
	var err error
	switch {
	case s.down.Load():
		s.failed++
		err = errSimDown
	case !s.lim.AllowN(now, 1):
		s.refused++
		err = syncbreaker.Overloaded(errSim503)
	default:
		if s.accepted[string(payload)]++; s.accepted[string(payload)] == 1 && bytes.HasPrefix(payload, []byte(`{"seeded"`)) {
			s.seeded++
		}
	}
	s.mu.Unlock()
	time.Sleep(s.latency)
	return err
}

// peak returns the most requests the server got in one second, over the
// seconds [from, to) since it started.
func (s *simServer) peak(from, to int64) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := 0
	for sec, n := range s.perSec {
		if sec >= from && sec < to {
			p = max(p, n)
		}
	}
	return p
}

// simDaemon is the first user's wiring over a simServer: a default
// GoChannel shared with fresh traffic, one processor loop, a handler that
// drives the four methods and marks a 503 Overloaded, Breaker.Settle.
type simDaemon struct {
	breaker *syncbreaker.Breaker
	store   *syncbreaker.JSONLStore
	server  *simServer
	seeded  []string
	stop    func()
}

type simConfig struct {
	capacity float64       // requests a second
	latency  time.Duration // per request
	backlog  int
	fresh    float64 // fresh messages a second alongside the drain
	rep      syncbreaker.RepublisherConfig
	breaker  syncbreaker.Config
}

// simIssueConfig is the republisher of the issue's measurement on main:
// 400 records against a 50 a second server opened the circuit after 5.
var simIssueConfig = syncbreaker.RepublisherConfig{Rate: 2000, Burst: 50, MaxInFlight: 8, SettleTimeout: 10 * time.Second}

func startSimDaemon(t *testing.T, cfg simConfig) *simDaemon {
	t.Helper()
	store, err := syncbreaker.OpenJSONLStore(filepath.Join(t.TempDir(), "p.jsonl"), syncbreaker.StoreConfig{Sync: syncbreaker.SyncNever})
	require.NoError(t, err)
	d := &simDaemon{store: store, server: newSimServer(cfg.capacity, cfg.latency)}
	for i := range cfg.backlog {
		p := fmt.Sprintf(`{"seeded":%d}`, i)
		d.seeded = append(d.seeded, p)
		require.NoError(t, store.Append(t.Context(), []byte(p)))
	}
	bus := newChanBus(1 << 16)
	rep, err := syncbreaker.NewRepublisher(bus, testTopic, cfg.rep)
	require.NoError(t, err)
	b, err := syncbreaker.New(cfg.breaker, store, rep)
	require.NoError(t, err)
	d.breaker = b
	msgs := bus.ch

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		for msg := range msgs {
			err := d.handle(msg)
			if b.Settle(msg, err) || err == nil {
				msg.Ack()
			} else {
				msg.Nack()
			}
		}
	})
	wg.Go(func() { _ = b.Run(ctx) })
	wg.Go(func() { _, _ = b.RetryPending(ctx) })
	if cfg.fresh > 0 {
		wg.Go(func() {
			every := time.Duration(float64(time.Second) / cfg.fresh)
			for i := 0; ; i++ {
				select {
				case <-ctx.Done():
					return
				case <-time.After(every):
				}
				_ = bus.Publish(testTopic, message.NewMessage(watermill.NewUUID(), fmt.Appendf(nil, `{"fresh":%d}`, i)))
			}
		})
	}
	d.stop = func() {
		cancel()
		synctest.Wait() // the rounds, Run and fresh traffic have returned
		_ = bus.Close()
		wg.Wait()
		require.NoError(t, store.Close())
	}
	return d
}

// chanBus is a bus like a default GoChannel for one subscriber: Publish
// returns before any handler runs. (A GoChannel with several messages in
// flight parks goroutines on a mutex, which a synctest bubble does not
// count as blocked, so its clock would stop.)
type chanBus struct {
	ch   chan *message.Message
	once sync.Once
}

func newChanBus(size int) *chanBus { return &chanBus{ch: make(chan *message.Message, size)} }

func (c *chanBus) Publish(_ string, msgs ...*message.Message) error {
	for _, m := range msgs {
		c.ch <- m
	}
	return nil
}

func (c *chanBus) Close() error {
	c.once.Do(func() { close(c.ch) })
	return nil
}

// handle is the first user's handler, with a 503 marked Overloaded (and
// no RecordFailure for it: Settle records it).
func (d *simDaemon) handle(msg *message.Message) error {
	if d.breaker.IsOpen() {
		return d.breaker.SaveForRetry(msg.Context(), msg.Payload)
	}
	err := d.server.post(msg.Payload)
	switch {
	case err == nil:
		d.breaker.RecordSuccess()
	case syncbreaker.IsOverloaded(err):
	default:
		d.breaker.RecordFailure()
	}
	return err
}

// delivered reports how many seeded payloads the server took.
func (d *simDaemon) delivered() int {
	d.server.mu.Lock()
	defer d.server.mu.Unlock()
	return d.server.seeded
}

// drain waits until the server took every seeded payload, or limit
// passed, and returns how long it took.
func (d *simDaemon) drain(limit time.Duration) (time.Duration, bool) {
	start := time.Now()
	for d.delivered() < len(d.seeded) {
		if time.Since(start) > limit {
			return time.Since(start), false
		}
		time.Sleep(10 * time.Millisecond)
	}
	return time.Since(start), true
}

// A backlog drains at the pace the server takes: 400 records against
// servers of 20, 50 and 200 requests a second, with fresh traffic
// alongside and the republisher of the issue's measurement (Rate 2000,
// MaxInFlight 8), drain in at most 1.5 x the ideal time (the backlog over
// what the server has left after the fresh traffic), the circuit stays
// closed, and refusals stay under a quarter of the records.
func TestAdaptivePaceDrainsAtTheServersCapacity(t *testing.T) {
	const backlog, fresh = 400, 2.0
	for _, capacity := range []float64{20, 50, 200} {
		t.Run(fmt.Sprintf("%g per second", capacity), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				d := startSimDaemon(t, simConfig{capacity: capacity, latency: 2 * time.Millisecond,
					backlog: backlog, fresh: fresh, rep: simIssueConfig})
				ideal := time.Duration(float64(backlog) / (capacity - fresh) * float64(time.Second))
				took, ok := d.drain(10 * ideal)
				st := d.breaker.Stats()
				d.stop()
				require.True(t, ok, "drained")
				t.Logf("%d records against %g/s: %v (ideal %v), %d refused, %d cuts, %d rounds, pace %.1f/s, window %d",
					backlog, capacity, took.Round(time.Millisecond), ideal.Round(time.Millisecond),
					d.server.refused, st.PaceCuts, st.Replays, st.Pace, st.Window)
				assert.LessOrEqual(t, took, ideal*3/2, "at most 1.5 x the ideal time")
				assert.Zero(t, st.Opens, "the circuit stayed closed")
				assert.Less(t, d.server.refused, backlog/4, "refusals under a quarter of the records")
			})
		})
	}
}

// A server faster than the ceiling sees at least 80% of it: the ramp
// reaches Rate and stays there.
func TestAdaptivePaceReachesTheCeiling(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const backlog, ceiling = 400, 100.0
		rep := syncbreaker.RepublisherConfig{Rate: ceiling, MaxInFlight: 8, SettleTimeout: 10 * time.Second}
		d := startSimDaemon(t, simConfig{capacity: 10_000, latency: 2 * time.Millisecond, backlog: backlog, rep: rep})
		took, ok := d.drain(time.Minute)
		st := d.breaker.Stats()
		d.stop()
		require.True(t, ok)
		seen := float64(backlog) / took.Seconds()
		t.Logf("%d records in %v: %.1f a second against a ceiling of %g; pace %.1f/s, window %d", backlog, took, seen, ceiling, st.Pace, st.Window)
		assert.GreaterOrEqual(t, seen, 0.8*ceiling, "at least 80%% of the ceiling")
		assert.Equal(t, ceiling, st.Pace, "the pace is at the ceiling")
		assert.Zero(t, st.PaceCuts)
	})
}

// A server that goes down mid-drain (connections refused, not 503s)
// opens the circuit within FailureThreshold: it gets exactly
// FailureThreshold requests while down, however wide the window was.
func TestAdaptivePaceServerDownOpensWithinThreshold(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const threshold = 10
		d := startSimDaemon(t, simConfig{capacity: 50, latency: 2 * time.Millisecond, backlog: 400, fresh: 2,
			rep: simIssueConfig, breaker: syncbreaker.Config{FailureThreshold: threshold}})
		for d.delivered() < 100 {
			time.Sleep(10 * time.Millisecond)
		}
		before := d.breaker.Stats()
		d.server.down.Store(true)
		for d.breaker.State() != syncbreaker.StateOpen {
			time.Sleep(10 * time.Millisecond)
		}
		time.Sleep(time.Minute) // what was in flight meets the open circuit
		st := d.breaker.Stats()
		d.stop()
		t.Logf("down at pace %.1f/s, window %d: %d requests while down, then open", before.Pace, before.Window, d.server.failed)
		assert.Greater(t, before.Window, 1, "the window had grown")
		assert.Equal(t, threshold, d.server.failed, "FailureThreshold requests met the outage")
		assert.EqualValues(t, 1, st.Opens)
		assert.Equal(t, 10.0, st.Pace, "the pace is back at its start")
		assert.Equal(t, 1, st.Window)
	})
}

// A server that refuses everything with 503 (Overloaded) is not down but
// gives nothing: the refusals count, but for those of the records in
// flight at each cut, so the circuit opens after FailureThreshold counted
// refusals, at most a window more per cut.
func TestAdaptivePaceAllOverloadedOpens(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const threshold = 10
		d := startSimDaemon(t, simConfig{capacity: 50, latency: 2 * time.Millisecond, backlog: 400,
			rep: simIssueConfig, breaker: syncbreaker.Config{FailureThreshold: threshold}})
		for d.delivered() < 100 {
			time.Sleep(10 * time.Millisecond)
		}
		d.server.lim.SetLimit(0)
		d.server.lim.SetBurst(0)
		refusedBefore, cutsBefore := d.server.refusedCount(), d.breaker.Stats().PaceCuts
		for d.breaker.State() != syncbreaker.StateOpen {
			time.Sleep(10 * time.Millisecond)
		}
		st := d.breaker.Stats()
		refused, cuts := d.server.refusedCount()-refusedBefore, int(st.PaceCuts-cutsBefore)
		d.stop()
		t.Logf("%d refusals, %d cuts, until the circuit opened", refused, cuts)
		assert.EqualValues(t, 1, st.Opens)
		assert.LessOrEqual(t, cuts, threshold/2, "two counted refusals a cut")
		assert.LessOrEqual(t, refused, threshold+8*cuts+8, "FailureThreshold, a window per cut and a window in flight")
	})
}

func (s *simServer) refusedCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.refused
}

// Without SettleTimeout a Republish that returns nil is a success, and a
// handler that records nothing drains at the ceiling: the pace never
// waits for an outcome nobody records.
func TestAdaptivePaceNeedsNoRecordedOutcome(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const n, ceiling = 500, 100.0
		bus := newGoChannel(t, gochannel.Config{BlockPublishUntilSubscriberAck: true})
		msgs, err := bus.Subscribe(t.Context(), testTopic)
		require.NoError(t, err)
		go func() {
			for msg := range msgs {
				msg.Ack() // records nothing
			}
		}()
		store := &memStore{}
		for i := range n {
			require.NoError(t, store.Append(t.Context(), fmt.Appendf(nil, "%d", i)))
		}
		rep := newTestRepublisher(t, bus, syncbreaker.RepublisherConfig{Rate: ceiling})
		b := newBreaker(t, syncbreaker.Config{}, store, rep)
		require.True(t, b.Features().AdaptivePace)
		assert.Equal(t, 10.0, b.Stats().Pace, "the start")
		start := time.Now()
		res, err := b.RetryPending(t.Context())
		took := time.Since(start)
		require.NoError(t, err)
		assert.Equal(t, n, res.Republished)
		assert.Equal(t, ceiling, b.Stats().Pace, "at the ceiling")
		t.Logf("%d records in %v at a ceiling of %g a second", n, took, ceiling)
		assert.LessOrEqual(t, took, time.Duration(float64(n)/ceiling*float64(time.Second))+time.Second, "the ceiling's time and the ramp's second")
	})
}

// Rate math.Inf(1) means no pacing at all: the pace reports +Inf and no
// record waits for a token.
func TestAdaptivePaceUnpaced(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := &memStore{}
		for i := range 1000 {
			require.NoError(t, store.Append(t.Context(), fmt.Appendf(nil, "%d", i)))
		}
		bus := newGoChannel(t, gochannel.Config{BlockPublishUntilSubscriberAck: true})
		msgs, err := bus.Subscribe(t.Context(), testTopic)
		require.NoError(t, err)
		go func() {
			for msg := range msgs {
				msg.Ack()
			}
		}()
		b := newBreaker(t, syncbreaker.Config{}, store, newTestRepublisher(t, bus, syncbreaker.RepublisherConfig{Rate: math.Inf(1)}))
		start := time.Now()
		res, err := b.RetryPending(t.Context())
		require.NoError(t, err)
		assert.Equal(t, 1000, res.Republished)
		assert.Zero(t, time.Since(start), "no pacing: no time passes")
		assert.True(t, math.IsInf(b.Stats().Pace, 1))
	})
}

// The off switch: FixedPace republishes at Rate with MaxInFlight from the
// first record, and Stats says so.
func TestAdaptivePaceOffSwitch(t *testing.T) {
	rig := newCapRig(t, syncbreaker.RepublisherConfig{Rate: 250, MaxInFlight: 4, FixedPace: true})
	b := newBreaker(t, syncbreaker.Config{}, rig.store, rig.rep)
	assert.False(t, b.Features().AdaptivePace)
	st := b.Stats()
	assert.Equal(t, 250.0, st.Pace)
	assert.Equal(t, 4, st.Window)

	// On by default, and an embedding decorator keeps it.
	rig = newCapRig(t, syncbreaker.RepublisherConfig{Rate: 250, MaxInFlight: 4})
	b = newBreaker(t, syncbreaker.Config{}, rig.store, &countingRepublisher{TopicRepublisher: rig.rep})
	assert.True(t, b.Features().AdaptivePace)
	st = b.Stats()
	assert.Equal(t, 10.0, st.Pace, "starts at 10 a second")
	assert.Equal(t, 1, st.Window, "and one record in flight")
}

// One poison record (the handler refuses it every round with a plain
// error while the server takes the rest) never cuts the pace; publish
// errors are no overload signal either.
func TestAdaptivePaceIgnoresPoisonAndPublishErrors(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := &memStore{}
		for i := range 100 {
			require.NoError(t, store.Append(t.Context(), fmt.Appendf(nil, "%d", i)))
		}
		bus := newGoChannel(t, gochannel.Config{})
		msgs, err := bus.Subscribe(t.Context(), testTopic)
		require.NoError(t, err)
		rep := newTestRepublisher(t, bus, syncbreaker.RepublisherConfig{Rate: 1000, SettleTimeout: time.Minute})
		b := newBreaker(t, syncbreaker.Config{}, store, rep)
		go func() {
			for msg := range msgs {
				var err error
				if string(msg.Payload) == "50" {
					b.RecordFailure()
					err = errors.New("400 Bad Request")
				} else {
					b.RecordSuccess()
				}
				b.Settle(msg, err)
				msg.Ack()
			}
		}()
		for range 3 {
			_, err := b.RetryPending(t.Context())
			require.NoError(t, err)
		}
		st := b.Stats()
		assert.Zero(t, st.PaceCuts, "one poison record does not cut the pace")
		assert.Equal(t, 1000.0, st.Pace)

		failing := &failingPublisher{err: errors.New("bus closed")}
		store2 := &memStore{}
		for i := range 10 {
			require.NoError(t, store2.Append(t.Context(), fmt.Appendf(nil, "%d", i)))
		}
		b2 := newBreaker(t, syncbreaker.Config{}, store2, newTestRepublisher(t, failing, syncbreaker.RepublisherConfig{}))
		for range 5 {
			_, _ = b2.RetryPending(t.Context())
		}
		assert.Zero(t, b2.Stats().PaceCuts, "publish errors are not overload")
		assert.Zero(t, b2.Stats().Overloads)
	})
}

type failingPublisher struct{ err error }

func (p *failingPublisher) Publish(string, ...*message.Message) error { return p.err }
func (p *failingPublisher) Close() error                              { return nil }

// An Overloaded refusal counts no attempt and is offered again in the
// same round; the pace is reset when the circuit opens.
func TestAdaptivePaceOverloadIsNotAnAttempt(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := &memStore{}
		require.NoError(t, store.Append(t.Context(), []byte("only")))
		bus := newGoChannel(t, gochannel.Config{})
		msgs, err := bus.Subscribe(t.Context(), testTopic)
		require.NoError(t, err)
		rep := newTestRepublisher(t, bus, syncbreaker.RepublisherConfig{Rate: 1000, SettleTimeout: time.Minute})
		b := newBreaker(t, syncbreaker.Config{}, store, rep)
		var seen []string
		go func() {
			for msg := range msgs {
				seen = append(seen, msg.Metadata.Get(syncbreaker.MetadataAttempts))
				var err error
				if len(seen) < 3 {
					err = syncbreaker.Overloaded(errors.New("429 Too Many Requests"))
				} else {
					b.RecordSuccess()
				}
				b.Settle(msg, err)
				msg.Ack()
			}
		}()
		res, err := b.RetryPending(t.Context())
		require.NoError(t, err)
		assert.Equal(t, 1, res.Republished, "delivered in the same round")
		assert.Equal(t, []string{"0", "0", "0"}, seen, "offered three times, no attempt counted")
		st := b.Stats()
		assert.EqualValues(t, 2, st.Overloads)
		assert.Zero(t, st.Opens, "at the start an overload counts, but two are not FailureThreshold")

		b.Trip(time.Minute)
		assert.Equal(t, 10.0, b.Stats().Pace, "reset when the circuit opens")
	})
}

// The refusals of the records in flight when the pace is cut are the
// burst the cut answers: they do not count towards FailureThreshold, so
// even a low threshold (3, with 8 records in flight) does not open the
// circuit of a server that is only slower than the ramp.
func TestAdaptivePaceBurstDoesNotOpen(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := startSimDaemon(t, simConfig{capacity: 50, latency: 2 * time.Millisecond, backlog: 400, fresh: 2,
			rep: simIssueConfig, breaker: syncbreaker.Config{FailureThreshold: 3}})
		_, ok := d.drain(time.Minute)
		st := d.breaker.Stats()
		d.stop()
		require.True(t, ok)
		t.Logf("%d refused, %d cuts, %d opens", d.server.refused, st.PaceCuts, st.Opens)
		assert.NotZero(t, st.PaceCuts)
		assert.Zero(t, st.Opens, "the circuit stayed closed")
	})
}

// Middleware and Execute: a fresh message refused with Overloaded while
// the circuit is closed is spilled and acked (the middleware), or
// returned to its caller (Execute); it counts towards FailureThreshold as
// a failure (no cut has happened, so it is no burst's), never as an
// attempt.
func TestAdaptivePaceOverloadedFreshTraffic(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := &memStore{}
		rep := newTestRepublisher(t, newGoChannel(t, gochannel.Config{}), syncbreaker.RepublisherConfig{})
		b := newBreaker(t, syncbreaker.Config{}, store, rep)
		busy := syncbreaker.Overloaded(errors.New("429 Too Many Requests"))
		h := b.Middleware(func(*message.Message) ([]*message.Message, error) { return nil, busy })
		_, err := h(message.NewMessage("m1", []byte(`"m1"`)))
		require.NoError(t, err, "spilled and acked")
		assert.Equal(t, []string{`"m1"`}, store.payloads())
		err = b.Execute(t.Context(), []byte(`"m2"`), func(context.Context) error { return busy })
		assert.ErrorIs(t, err, busy, "the caller keeps its payload")
		st := b.Stats()
		assert.EqualValues(t, 2, st.Overloads)
		assert.Equal(t, 2, st.ConsecutiveFailures)
		assert.True(t, syncbreaker.IsOverloaded(err))
		assert.False(t, syncbreaker.IsOverloaded(syncbreaker.Permanent(errors.New("400"))))
		assert.NoError(t, syncbreaker.Overloaded(nil))
	})
}
