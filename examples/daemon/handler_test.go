package main

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"

	"github.com/syncbreaker/syncbreaker/mocks"
)

// roundTripFunc is an in-memory http.RoundTripper: the handler's requests
// never touch the network.
type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// fakeServer answers every request with status and records what it got.
type fakeServer struct {
	status   int
	requests []*http.Request
	bodies   []string
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
		return &http.Response{StatusCode: s.status, Body: io.NopCloser(strings.NewReader("")), Request: r}, nil
	})}
}

// TestSyncHandler shows how a daemon tests its own handler: the breaker is
// injected, so a mock decides the circuit's state and checks what the
// handler reports to it.
func TestSyncHandler(t *testing.T) {
	errDisk := errors.New("disk full")
	payload := []byte(`{"seq":7,"commands":["make test"]}`)
	tests := []struct {
		name       string
		status     int
		cancelled  bool // the daemon is stopping
		expect     func(cb *mocks.CircuitBreaker)
		wantPosted bool
		wantErr    error
	}{
		{
			name: "open circuit: spilled, server not called",
			expect: func(cb *mocks.CircuitBreaker) {
				cb.EXPECT().IsOpen().Return(true).Once()
				cb.EXPECT().SaveForRetry(mock.Anything, payload).Return(nil).Once()
			},
		},
		{
			name: "open circuit, spill fails: error, so the message is nacked",
			expect: func(cb *mocks.CircuitBreaker) {
				cb.EXPECT().IsOpen().Return(true).Once()
				cb.EXPECT().SaveForRetry(mock.Anything, payload).Return(errDisk).Once()
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
			name:   "closed, server fails: failure recorded and payload spilled",
			status: http.StatusServiceUnavailable,
			expect: func(cb *mocks.CircuitBreaker) {
				cb.EXPECT().IsOpen().Return(false).Once()
				cb.EXPECT().RecordFailure().Once()
				cb.EXPECT().SaveForRetry(mock.Anything, payload).Return(nil).Once()
			},
			wantPosted: true,
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
			server := &fakeServer{status: tt.status}
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
