package syncbreaker_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"

	"github.com/syncbreaker/syncbreaker"
	"github.com/syncbreaker/syncbreaker/mocks"
)

var (
	errDisk   = errors.New("disk full")
	errClient = errors.New("400 bad request")
)

type outcome int

const (
	success outcome = iota
	failure
	permanent
	notFailure // rejected by Config.IsFailure
	cancelled
	spillError // failure, and the store cannot append
)

func (o outcome) String() string {
	return [...]string{"success", "failure", "permanent", "not-failure", "cancelled", "spill-error"}[o]
}

// toState brings a fresh breaker (threshold failures to open, ResetInterval
// one minute, Run started when needed) into state.
func toState(t *testing.T, b *syncbreaker.Breaker, state syncbreaker.State, threshold int) {
	t.Helper()
	switch state {
	case syncbreaker.StateOpen:
		failN(b, threshold)
	case syncbreaker.StateHalfOpen:
		failN(b, threshold)
		t.Cleanup(startRun(t, b))
		time.Sleep(time.Minute)
		synctest.Wait()
	}
	require.Equal(t, state, b.State())
}

func TestExecuteMatrix(t *testing.T) {
	const (
		closed   = syncbreaker.StateClosed
		open     = syncbreaker.StateOpen
		halfOpen = syncbreaker.StateHalfOpen
	)
	tests := []struct {
		state     syncbreaker.State
		threshold int // failures that open; 1 unless the case needs more
		outcome   outcome
		wantSend  bool
		wantErrs  []error // each must match with errors.Is; none means nil
		wantSpill bool
		wantState syncbreaker.State
	}{
		{closed, 1, success, true, nil, false, closed},
		{closed, 1, failure, true, nil, true, open},
		{closed, 3, failure, true, []error{errServer}, false, closed},
		{closed, 1, permanent, true, []error{errClient}, false, closed},
		{closed, 1, notFailure, true, []error{errClient}, false, closed},
		{closed, 1, cancelled, true, []error{context.Canceled}, false, closed},
		{closed, 1, spillError, true, []error{errServer, errDisk}, false, open},
		{closed, 3, spillError, true, []error{errServer}, false, closed},

		{open, 1, success, false, nil, true, open},
		{open, 1, failure, false, nil, true, open},
		{open, 1, permanent, false, nil, true, open},
		{open, 1, cancelled, false, nil, true, open},
		{open, 1, spillError, false, []error{errDisk}, false, open},

		{halfOpen, 1, success, true, nil, false, closed},
		{halfOpen, 1, failure, true, nil, true, open},
		{halfOpen, 3, failure, true, nil, true, open},
		{halfOpen, 1, permanent, true, []error{errClient}, false, halfOpen},
		{halfOpen, 1, notFailure, true, []error{errClient}, false, halfOpen},
		{halfOpen, 1, cancelled, true, []error{context.Canceled}, false, halfOpen},
		{halfOpen, 1, spillError, true, []error{errServer, errDisk}, false, open},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%v/threshold=%d/%v", tt.state, tt.threshold, tt.outcome), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				store := &memStore{}
				b := newBreaker(t, syncbreaker.Config{
					FailureThreshold: tt.threshold, ResetInterval: time.Minute, Jitter: -1,
					IsFailure: func(err error) bool { return !errors.Is(err, errClient) },
				}, store, nil)
				toState(t, b, tt.state, tt.threshold)
				if tt.outcome == spillError {
					store.appendErr = errDisk
				}

				ctx, cancel := context.WithCancel(t.Context())
				defer cancel()
				sent := false
				err := b.Execute(ctx, []byte("payload"), func(ctx context.Context) error {
					sent = true
					switch tt.outcome {
					case success:
						return nil
					case permanent:
						return syncbreaker.Permanent(errClient)
					case notFailure:
						return fmt.Errorf("post: %w", errClient)
					case cancelled:
						cancel()
						return fmt.Errorf("post: %w", ctx.Err())
					default:
						return fmt.Errorf("post: %w", errServer)
					}
				})
				if tt.state == open && tt.outcome == cancelled {
					cancel()
				}

				assert.Equal(t, tt.wantSend, sent, "send called")
				if len(tt.wantErrs) == 0 {
					assert.NoError(t, err)
				}
				for _, want := range tt.wantErrs {
					assert.ErrorIs(t, err, want)
				}
				if tt.outcome == permanent && tt.wantSend {
					assert.True(t, syncbreaker.IsPermanent(err))
				}
				if tt.wantSpill {
					assert.Equal(t, []string{"payload"}, store.payloads())
					assert.Equal(t, uint64(1), b.Stats().Spilled)
				} else {
					assert.Empty(t, store.payloads())
					assert.Zero(t, b.Stats().Spilled)
				}
				if tt.outcome == spillError && tt.wantState == open {
					assert.Equal(t, uint64(1), b.Stats().SpillErrors, "a spill was tried")
				}
				assert.Equal(t, tt.wantState, b.State())
				if tt.wantState == closed && tt.outcome != failure && tt.outcome != spillError {
					assert.Zero(t, b.Stats().ConsecutiveFailures, "only failures count")
				}
			})
		})
	}
}

// The spill goes to the store byte-exact, with the caller's context.
func TestExecuteOpenAppendsExactPayload(t *testing.T) {
	type ctxKey struct{}
	payload := []byte(`{"cmd":"git push"}`)
	store := mocks.NewPendingStore(t)
	store.EXPECT().
		Append(mock.MatchedBy(func(ctx context.Context) bool { return ctx.Value(ctxKey{}) == "caller" }), payload).
		Return(nil).Once()
	b := newBreaker(t, syncbreaker.Config{FailureThreshold: 1}, store, mocks.NewRepublisher(t))
	b.RecordFailure()

	ctx := context.WithValue(t.Context(), ctxKey{}, "caller")
	err := b.Execute(ctx, payload, func(context.Context) error {
		t.Error("send must not be called while open")
		return nil
	})
	require.NoError(t, err)
}

func TestSaveForRetry(t *testing.T) {
	store := &memStore{}
	b := newBreaker(t, syncbreaker.Config{}, store, nil)
	require.NoError(t, b.SaveForRetry(t.Context(), []byte("a")))
	assert.Equal(t, []string{"a"}, store.payloads())
	assert.Equal(t, uint64(1), b.Stats().Spilled)

	store.appendErr = errDisk
	err := b.SaveForRetry(t.Context(), []byte("secret-payload"))
	require.ErrorIs(t, err, errDisk)
	assert.NotContains(t, err.Error(), "secret-payload", "payloads never go into errors")
	assert.Contains(t, err.Error(), "syncbreaker: ")
	assert.Equal(t, uint64(1), b.Stats().SpillErrors)
}

func TestPermanent(t *testing.T) {
	assert.NoError(t, syncbreaker.Permanent(nil))
	err := fmt.Errorf("wrapped: %w", syncbreaker.Permanent(errClient))
	assert.True(t, syncbreaker.IsPermanent(err))
	assert.ErrorIs(t, err, errClient)
	assert.Equal(t, "wrapped: 400 bad request", err.Error())
	assert.False(t, syncbreaker.IsPermanent(errClient))
	assert.False(t, syncbreaker.IsPermanent(nil))
}
