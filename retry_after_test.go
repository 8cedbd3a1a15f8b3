package syncbreaker_test

import (
	"context"
	"errors"
	"math"
	"net/http"
	"testing"
	"testing/synctest"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/syncbreaker/syncbreaker"
)

var errBusy = errors.New("server answered 503")

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"120", 2 * time.Minute, true},
		{" 0 ", 0, true},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second, true},
		{now.Add(-time.Hour).Format(http.TimeFormat), 0, true},
		{"Friday, 04-Dec-26 12:05:00 GMT", 5 * time.Minute, true}, // RFC 850, which HTTP-date allows
		{"99999999999999999999", 0, false},
		{"9999999999999", math.MaxInt64, true},
		{"-5", 0, false},
		{"soon", 0, false},
		{"", 0, false},
	} {
		d, ok := syncbreaker.ParseRetryAfter(tt.in, now)
		assert.Equal(t, tt.ok, ok, "%q", tt.in)
		assert.Equal(t, tt.want, d, "%q", tt.in)
	}
}

// A server's delay opens the circuit at once, whatever the threshold, for
// the server's delay, raised to a second and capped.
func TestTripOpensForTheServersDelay(t *testing.T) {
	for _, tt := range []struct {
		name string
		cfg  syncbreaker.Config
		d    time.Duration
		want time.Duration
	}{
		{"as asked", syncbreaker.Config{}, 90 * time.Second, 90 * time.Second},
		{"zero is a second, not a hot loop", syncbreaker.Config{}, 0, time.Second},
		{"a date in the past", syncbreaker.Config{}, -time.Hour, time.Second},
		{"capped at a day", syncbreaker.Config{}, 72 * time.Hour, 24 * time.Hour},
		{"capped as configured", syncbreaker.Config{MaxRetryAfter: time.Hour}, 2 * time.Hour, time.Hour},
		{"longer than the grown interval", syncbreaker.Config{ResetInterval: time.Minute}, 3 * time.Hour, 3 * time.Hour},
	} {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				b := newBreaker(t, tt.cfg, nil, nil)
				stop := startRun(t, b)
				defer stop()
				b.Trip(tt.d)
				st := b.Stats()
				require.Equal(t, syncbreaker.StateOpen, st.State)
				assert.Equal(t, tt.want, st.OpenInterval)
				assert.Equal(t, time.Now().Add(tt.want), st.OpenUntil)
				time.Sleep(tt.want - time.Nanosecond)
				synctest.Wait()
				assert.Equal(t, syncbreaker.StateOpen, b.State())
				time.Sleep(time.Nanosecond)
				synctest.Wait()
				assert.Equal(t, syncbreaker.StateHalfOpen, b.State(), "half-open when the server said")
			})
		})
	}
}

// The server's delay replaces the breaker's own backoff for the current
// opening, longer or shorter; a later, shorter one does not shorten it.
func TestTripReplacesTheGrownIntervalButNeverShortensTheServers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBreaker(t, syncbreaker.Config{FailureThreshold: 1, Jitter: -1}, nil, nil)
		b.RecordFailure() // the handler records the failure first: open for an hour
		assert.Equal(t, time.Hour, b.Stats().OpenInterval)
		b.Trip(5 * time.Minute) // then reports the server's Retry-After
		assert.Equal(t, 5*time.Minute, b.Stats().OpenInterval, "the server's delay, not the grown one")
		start := time.Now()
		b.Trip(time.Minute)
		assert.Equal(t, start.Add(5*time.Minute), b.Stats().OpenUntil, "a shorter delay does not shorten it")
		b.Trip(10 * time.Minute)
		assert.Equal(t, start.Add(10*time.Minute), b.Stats().OpenUntil, "a longer one extends it")
	})
}

// Execute recognises a RetryAfter through wrapping: open at once, payload
// spilled, nil returned. A call that started before a transition may
// extend an open circuit but never re-opens a closed one.
func TestExecuteRetryAfter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := &memStore{}
		b := newBreaker(t, syncbreaker.Config{Jitter: -1}, store, nil)
		err := b.Execute(t.Context(), []byte("p1"), func(context.Context) error {
			return errors.Join(errors.New("post"), syncbreaker.RetryAfter(errBusy, time.Minute))
		})
		require.NoError(t, err, "spilled, handled")
		assert.Equal(t, syncbreaker.StateOpen, b.State(), "open at once, threshold 10")
		assert.Equal(t, []string{"p1"}, store.payloads())

		b.Reset()
		err = b.Execute(t.Context(), []byte("p2"), func(context.Context) error {
			b.Trip(time.Minute) // the circuit moves on while this call runs
			b.Reset()
			return syncbreaker.RetryAfter(errBusy, time.Hour)
		})
		assert.ErrorIs(t, err, errBusy, "not spilled: the caller keeps it")
		assert.Equal(t, syncbreaker.StateClosed, b.State(), "a stale RetryAfter never re-opens a closed circuit")

		start := time.Now()
		err = b.Execute(t.Context(), []byte("p3"), func(context.Context) error {
			b.Trip(time.Minute)
			return syncbreaker.RetryAfter(errBusy, time.Hour)
		})
		require.NoError(t, err)
		assert.Equal(t, start.Add(time.Hour), b.Stats().OpenUntil, "but it extends an open one")
	})
}

// Trip while half-open ends the epoch and stops the replay.
func TestTripWhileHalfOpenStopsTheReplay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := &memStore{}
		rep := &blockingRepublisher{entered: make(chan struct{}, 2), release: make(chan struct{})}
		b := halfOpenBreaker(t, syncbreaker.Config{}, store, rep)
		synctest.Wait() // Run's own round, on entering half-open, found nothing
		for _, p := range []string{"a", "b"} {
			require.NoError(t, store.Append(t.Context(), []byte(p)))
		}
		done := make(chan error, 1)
		go func() { _, err := b.RetryPending(t.Context()); done <- err }()
		<-rep.entered
		b.Trip(time.Minute)
		assert.Equal(t, syncbreaker.StateOpen, b.State())
		close(rep.release)
		assert.ErrorIs(t, <-done, syncbreaker.ErrOpen)
		assert.Equal(t, []string{"b"}, store.payloads(), "the round stopped before b")
	})
}

// A republished record its handler refuses with RetryAfter is not an
// attempt, and the circuit is open before its Republish returns.
func TestRepublishedRetryAfterIsNotAnAttempt(t *testing.T) {
	rig := newCapRig(t, syncbreaker.RepublisherConfig{})
	var b *syncbreaker.Breaker
	rep := &checkingRepublisher{TopicRepublisher: rig.rep, after: func(err error) {
		assert.Error(t, err)
		assert.Equal(t, syncbreaker.StateOpen, b.State(), "open before Republish returned")
	}}
	b = newBreaker(t, syncbreaker.Config{}, rig.store, rep)
	recs := rig.seed(t, `"a"`, `"b"`)
	rig.loop(t, b, 1, func(*message.Message) error {
		return syncbreaker.RetryAfter(errBusy, time.Minute)
	})
	_, err := b.RetryPending(t.Context())
	require.ErrorIs(t, err, syncbreaker.ErrOpen)
	assert.Equal(t, recs, peek(t, rig.store), "both in place, no attempt counted")
	assert.Equal(t, time.Minute, b.Stats().OpenInterval)
}

// checkingRepublisher calls after with what Republish returned.
type checkingRepublisher struct {
	*syncbreaker.TopicRepublisher
	after func(error)
}

func (c *checkingRepublisher) Republish(ctx context.Context, rec syncbreaker.Record) error {
	err := c.TopicRepublisher.Republish(ctx, rec)
	c.after(err)
	return err
}

// blockingRepublisher reports each call and waits for release.
type blockingRepublisher struct {
	entered chan struct{}
	release chan struct{}
}

func (r *blockingRepublisher) Republish(ctx context.Context, _ syncbreaker.Record) error {
	r.entered <- struct{}{}
	select {
	case <-r.release:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
