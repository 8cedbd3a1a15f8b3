package main

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"

	"github.com/syncbreaker/syncbreaker"
	"github.com/syncbreaker/syncbreaker/mocks"
)

// roundTripFunc is an in-memory http.RoundTripper: the handler's requests
// never touch the network.
type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// fakeServer answers every request with status and records what it got.
type fakeServer struct {
	status     int
	retryAfter string // the Retry-After header, if any
	requests   []*http.Request
	bodies     []string
}

func (s *fakeServer) client() *http.Client {
	return &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		if err := r.Context().Err(); err != nil { // as http.Transport does
			return nil, err
		}
		body, err := io.ReadAll(r.Body)
		if err != nil {
			return nil, err
		}
		s.requests = append(s.requests, r)
		s.bodies = append(s.bodies, string(body))
		header := http.Header{}
		if s.retryAfter != "" {
			header.Set("Retry-After", s.retryAfter)
		}
		return &http.Response{StatusCode: s.status, Header: header, Body: io.NopCloser(strings.NewReader("")), Request: r}, nil
	})}
}

// TestSyncHandler shows how a daemon tests its own handler: the breaker is
// injected, so a mock decides the circuit's state and checks what the
// handler reports to it.
func TestSyncHandler(t *testing.T) {
	errDisk := errors.New("disk full")
	payload := []byte(`{"seq":7,"commands":["make test"]}`)
	remarshalled := []byte(`{"commands":["make test"],"seq":7}`) // what the handler spills: a copy, not the bytes received
	tests := []struct {
		name       string
		status     int
		retryAfter string
		check      func(t *testing.T, err error)
		cancelled  bool // the daemon is stopping
		expect     func(cb *mocks.CircuitBreaker)
		wantPosted bool
		wantErr    error
	}{
		{
			name: "open circuit: spilled, server not called",
			expect: func(cb *mocks.CircuitBreaker) {
				cb.EXPECT().IsOpen().Return(true).Once()
				cb.EXPECT().SaveForRetry(mock.Anything, remarshalled).Return(nil).Once()
			},
		},
		{
			name: "open circuit, spill fails: error, so the message is nacked",
			expect: func(cb *mocks.CircuitBreaker) {
				cb.EXPECT().IsOpen().Return(true).Once()
				cb.EXPECT().SaveForRetry(mock.Anything, remarshalled).Return(errDisk).Once()
			},
			wantErr: errDisk,
		},
		{
			name:   "closed, server accepts: success recorded",
			status: http.StatusNoContent,
			expect: func(cb *mocks.CircuitBreaker) {
				cb.EXPECT().IsOpen().Return(false).Once()
				cb.EXPECT().RecordSuccess().Once()
			},
			wantPosted: true,
		},
		{
			name:   "closed, server fails: failure recorded, error returned (the loop's Settle spills it)",
			status: http.StatusServiceUnavailable,
			expect: func(cb *mocks.CircuitBreaker) {
				cb.EXPECT().IsOpen().Return(false).Once()
				cb.EXPECT().RecordFailure().Once()
			},
			wantPosted: true,
			wantErr:    errServerAnswered,
		},
		{
			name:   "closed, 400: failure recorded, the error marked Permanent (not spilled, not counted by Settle)",
			status: http.StatusBadRequest,
			expect: func(cb *mocks.CircuitBreaker) {
				cb.EXPECT().IsOpen().Return(false).Once()
				cb.EXPECT().RecordFailure().Once()
			},
			wantPosted: true,
			wantErr:    errServerAnswered,
			check:      func(t *testing.T, err error) { assert.True(t, syncbreaker.IsPermanent(err)) },
		},
		{
			name:       "closed, 503 with Retry-After: the server's delay travels with the error",
			status:     http.StatusServiceUnavailable,
			retryAfter: "120",
			expect: func(cb *mocks.CircuitBreaker) {
				cb.EXPECT().IsOpen().Return(false).Once()
				cb.EXPECT().RecordFailure().Once()
			},
			wantPosted: true,
			wantErr:    errServerAnswered,
			check: func(t *testing.T, err error) {
				d, ok := syncbreaker.RetryAfterDelay(err)
				assert.True(t, ok)
				assert.Equal(t, 2*time.Minute, d)
			},
		},
		{
			name:      "closed, daemon stopping: nothing recorded, message nacked",
			status:    http.StatusNoContent,
			cancelled: true,
			expect: func(cb *mocks.CircuitBreaker) {
				cb.EXPECT().IsOpen().Return(false).Once()
			},
			wantErr: context.Canceled,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cb := mocks.NewCircuitBreaker(t) // fails the test on an unexpected or missing call
			tt.expect(cb)
			server := &fakeServer{status: tt.status, retryAfter: tt.retryAfter}
			h := &syncHandler{breaker: cb, client: server.client(), url: "http://backend.invalid/sync"}

			msg := message.NewMessage("msg-1", payload)
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			if tt.cancelled {
				cancel()
			}
			msg.SetContext(ctx)

			err := h.Handle(msg)
			if tt.wantErr != nil {
				require.ErrorIs(t, err, tt.wantErr)
			} else {
				require.NoError(t, err)
			}
			if tt.check != nil {
				tt.check(t, err)
			}
			if !tt.wantPosted {
				assert.Empty(t, server.requests, "the server must not be called")
				return
			}
			require.Len(t, server.requests, 1)
			assert.Equal(t, "msg-1", server.requests[0].Header.Get(idempotencyHeader))
			assert.Equal(t, string(payload), server.bodies[0])
		})
	}
}

// TestSyncHandlerSend checks the -router handler: it posts, returns the
// server's failure, and leaves the breaker to breaker.Middleware.
func TestSyncHandlerSend(t *testing.T) {
	for _, status := range []int{http.StatusNoContent, http.StatusServiceUnavailable} {
		cb := mocks.NewCircuitBreaker(t) // no call expected
		server := &fakeServer{status: status}
		h := &syncHandler{breaker: cb, client: server.client(), url: "http://backend.invalid/sync"}
		err := h.Send(message.NewMessage("msg-1", []byte(`{"seq":7}`)))
		if status/100 == 2 {
			require.NoError(t, err)
		} else {
			require.ErrorContains(t, err, "server answered")
		}
		require.Len(t, server.requests, 1)
		assert.Equal(t, "msg-1", server.requests[0].Header.Get(idempotencyHeader))
	}
}
