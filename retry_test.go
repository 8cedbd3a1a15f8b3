package syncbreaker_test

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"

	"github.com/syncbreaker/syncbreaker"
	"github.com/syncbreaker/syncbreaker/mocks"
)

// seeded returns a memStore holding the given payloads as r1, r2, ...
func seeded(t *testing.T, payloads ...string) *memStore {
	t.Helper()
	s := &memStore{}
	for _, p := range payloads {
		require.NoError(t, s.Append(t.Context(), []byte(p)))
	}
	return s
}

func TestRetryPendingRepublishesAndRemoves(t *testing.T) {
	store := seeded(t, "a", "b", "c")
	rep := &recordingRepublisher{}
	b := newBreaker(t, syncbreaker.Config{}, store, rep)

	res, err := b.RetryPending(t.Context())
	require.NoError(t, err)
	assert.Equal(t, syncbreaker.ReplayResult{Republished: 3, Remaining: 0}, res)
	assert.Equal(t, []string{"r1", "r2", "r3"}, rep.republished())
	assert.Empty(t, store.records())
	st := b.Stats()
	assert.Equal(t, uint64(3), st.Republished)
	assert.Equal(t, uint64(1), st.Replays)
}

// A Republisher that fails keeps the record pending (with its attempt
// counted) and stops the round, leaving later records untouched.
func TestRetryPendingRepublisherFailureKeepsRecord(t *testing.T) {
	store := seeded(t, "a", "b", "c")
	rep := mocks.NewRepublisher(t)
	byID := func(id string) any {
		return mock.MatchedBy(func(r syncbreaker.Record) bool { return r.ID == id })
	}
	rep.EXPECT().Republish(mock.Anything, byID("r1")).Return(nil).Once()
	rep.EXPECT().Republish(mock.Anything, byID("r2")).Return(errServer).Once()
	b := newBreaker(t, syncbreaker.Config{}, store, rep)

	res, err := b.RetryPending(t.Context())
	require.ErrorIs(t, err, errServer)
	assert.Contains(t, err.Error(), "r2")
	assert.Equal(t, syncbreaker.ReplayResult{Republished: 1, Remaining: 2, Skipped: 2}, res)
	recs := store.records()
	require.Len(t, recs, 2)
	assert.Equal(t, "r2", recs[0].ID)
	assert.Equal(t, 0, recs[0].Attempts, "a publish failure says nothing about the record: no attempt")
	assert.Equal(t, "r3", recs[1].ID)
	assert.Equal(t, 0, recs[1].Attempts, "records after the failure are untouched")
	assert.Equal(t, uint64(1), b.Stats().RepublishErrors)
	assert.Equal(t, syncbreaker.StateClosed, b.State(), "a republish failure is not a server failure")
}

// When the circuit opens during a replay, the replay stops at once and
// what was not republished stays pending.
func TestRetryPendingStopsWhenCircuitOpens(t *testing.T) {
	store := seeded(t, "a", "b", "c")
	var b *syncbreaker.Breaker
	calls := 0
	rep := mocks.NewRepublisher(t)
	rep.EXPECT().Republish(mock.Anything, mock.Anything).RunAndReturn(func(ctx context.Context, _ syncbreaker.Record) error {
		calls++
		b.RecordFailure() // the server fails elsewhere: the circuit opens
		assert.NoError(t, ctx.Err(), "a record handed to Republish is awaited on the caller's context; the round stops before the next")
		return nil
	}).Once()
	b = newBreaker(t, syncbreaker.Config{FailureThreshold: 1}, store, rep)

	res, err := b.RetryPending(t.Context())
	require.ErrorIs(t, err, syncbreaker.ErrOpen)
	assert.Equal(t, 1, calls)
	assert.Equal(t, 2, res.Remaining)
	assert.Equal(t, []string{"b", "c"}, store.payloads())
}

func TestRetryPendingWhileOpen(t *testing.T) {
	store := mocks.NewPendingStore(t) // no Replay expected
	b := newBreaker(t, syncbreaker.Config{FailureThreshold: 1}, store, mocks.NewRepublisher(t))
	b.RecordFailure()
	_, err := b.RetryPending(t.Context())
	assert.ErrorIs(t, err, syncbreaker.ErrOpen)
}

func TestRetryPendingConcurrentCallsDoNotOverlap(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := seeded(t, "a")
		entered := make(chan struct{})
		release := make(chan struct{})
		rep := mocks.NewRepublisher(t)
		rep.EXPECT().Republish(mock.Anything, mock.Anything).RunAndReturn(func(context.Context, syncbreaker.Record) error {
			close(entered)
			<-release
			return nil
		}).Once()
		b := newBreaker(t, syncbreaker.Config{}, store, rep)

		done := make(chan error, 1)
		go func() {
			_, err := b.RetryPending(t.Context())
			done <- err
		}()
		<-entered
		_, err := b.RetryPending(t.Context())
		assert.ErrorIs(t, err, syncbreaker.ErrReplayInProgress)
		close(release)
		require.NoError(t, <-done)

		res, err := b.RetryPending(t.Context()) // free again
		require.NoError(t, err)
		assert.Zero(t, res.Remaining)
	})
}

func TestRetryPendingCallerContextEnds(t *testing.T) {
	store := seeded(t, "a", "b")
	ctx, cancel := context.WithCancel(t.Context())
	rep := mocks.NewRepublisher(t)
	rep.EXPECT().Republish(mock.Anything, mock.Anything).RunAndReturn(func(context.Context, syncbreaker.Record) error {
		cancel()
		return nil
	}).Once()
	b := newBreaker(t, syncbreaker.Config{}, store, rep)
	res, err := b.RetryPending(ctx)
	assert.Equal(t, context.Canceled, err, "ctx.Err() as is")
	assert.Equal(t, 1, res.Remaining)
}

func TestRetryPendingStoreError(t *testing.T) {
	errIO := errors.New("read error")
	store := mocks.NewPendingStore(t)
	store.EXPECT().Replay(mock.Anything, mock.Anything).Return(syncbreaker.ReplayResult{Remaining: 4}, errIO).Once()
	b := newBreaker(t, syncbreaker.Config{}, store, mocks.NewRepublisher(t))
	res, err := b.RetryPending(t.Context())
	require.ErrorIs(t, err, errIO)
	assert.Contains(t, err.Error(), "syncbreaker: ")
	assert.Equal(t, 4, res.Remaining)
}

func TestRunTwiceRefused(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBreaker(t, syncbreaker.Config{}, nil, nil)
		stop := startRun(t, b)
		synctest.Wait()
		assert.ErrorIs(t, b.Run(t.Context()), syncbreaker.ErrAlreadyRunning)
		stop()
		// Run may be called again once it returned.
		stop = startRun(t, b)
		synctest.Wait()
		stop()
	})
}

// Run returns promptly when its context ends, even in the middle of a
// replay whose Republish waits on its context.
func TestRunReturnsOnCancelDuringReplay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := seeded(t, "a", "b")
		rep := mocks.NewRepublisher(t)
		rep.EXPECT().Republish(mock.Anything, mock.Anything).RunAndReturn(func(ctx context.Context, _ syncbreaker.Record) error {
			<-ctx.Done()
			return ctx.Err()
		}).Once()
		b := newBreaker(t, syncbreaker.Config{ResetInterval: time.Minute}, store, rep)
		stop := startRun(t, b)
		time.Sleep(time.Minute)
		synctest.Wait() // Run is blocked in Republish
		stop()
		assert.Equal(t, []string{"a", "b"}, store.payloads())
	})
}

// Records left from an earlier run go out at every ResetInterval tick while
// the circuit stays closed.
func TestRunRetriesPendingWhileClosed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := seeded(t, "old1", "old2")
		rep := &recordingRepublisher{}
		b := newBreaker(t, syncbreaker.Config{ResetInterval: time.Hour}, store, rep)
		stop := startRun(t, b)
		defer stop()

		time.Sleep(time.Hour - time.Nanosecond)
		synctest.Wait()
		assert.Empty(t, rep.republished(), "nothing before the first tick")
		time.Sleep(time.Nanosecond)
		synctest.Wait()
		assert.Equal(t, []string{"r1", "r2"}, rep.republished())

		require.NoError(t, b.SaveForRetry(t.Context(), []byte("later")))
		time.Sleep(time.Hour)
		synctest.Wait()
		assert.Equal(t, []string{"r1", "r2", "r3"}, rep.republished())
		assert.Empty(t, store.records())
		assert.Equal(t, syncbreaker.StateClosed, b.State())
	})
}

// At the end of the open interval the breaker goes half-open and
// republishes what was spilled. A republish alone does not close the
// circuit (a publisher accepting a message says nothing about the server);
// the first successful send does. While half-open the round publishes one
// record as the probe and waits for it to end before the next, even with a
// republisher that does not wait for settles, as this one does not.
func TestRunHalfOpenRepublishesSpilled(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := &memStore{}
		rep := &recordingRepublisher{}
		b := newBreaker(t, syncbreaker.Config{FailureThreshold: 1, ResetInterval: time.Hour, Jitter: -1}, store, rep)
		stop := startRun(t, b)
		defer stop()

		send := func(context.Context) error { return errServer }
		for _, p := range []string{"x", "y"} {
			require.NoError(t, b.Execute(t.Context(), []byte(p), send))
		}
		require.Equal(t, []string{"x", "y"}, store.payloads())

		time.Sleep(time.Hour)
		synctest.Wait()
		assert.Equal(t, syncbreaker.StateHalfOpen, b.State())
		assert.Equal(t, []string{"r1"}, rep.republished(), "one probe at a time while half-open")

		require.NoError(t, b.Execute(t.Context(), []byte("z"), func(context.Context) error { return nil }))
		assert.Equal(t, syncbreaker.StateClosed, b.State())
		synctest.Wait()
		assert.Equal(t, []string{"r1", "r2"}, rep.republished(), "closed: the round goes on")
		assert.Empty(t, store.records())
	})
}

// A republisher failing at the half-open replay keeps the records, with no
// attempt counted (attempts count only while the circuit is closed); they
// go out at the next tick.
func TestRunHalfOpenRepublishFailureRetriedNextTick(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := seeded(t, "a")
		rep := &recordingRepublisher{err: errServer}
		b := newBreaker(t, syncbreaker.Config{FailureThreshold: 1, ResetInterval: time.Minute, Jitter: -1}, store, rep)
		stop := startRun(t, b)
		defer stop()
		b.RecordFailure()
		time.Sleep(time.Minute)
		synctest.Wait()
		require.Equal(t, syncbreaker.StateHalfOpen, b.State())
		require.Len(t, store.records(), 1)
		assert.Equal(t, 0, store.records()[0].Attempts)

		rep.mu.Lock()
		rep.err = nil
		rep.mu.Unlock()
		time.Sleep(time.Minute)
		synctest.Wait()
		assert.Equal(t, []string{"r1"}, rep.republished())
		assert.Empty(t, store.records())
	})
}
