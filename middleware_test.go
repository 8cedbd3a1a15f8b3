package syncbreaker_test

import (
	"context"
	"sync/atomic"
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

// With the real GoChannel and router: while the circuit is open the handler
// is skipped, the payload is spilled and the message is acked, not nacked
// into a redelivery loop. BlockPublishUntilSubscriberAck makes Publish
// return only once the message is acked; a nack would redeliver it and
// Publish would not return.
func TestMiddlewareOpenAcksAndSpills(t *testing.T) {
	store := &memStore{}
	b := newBreaker(t, syncbreaker.Config{FailureThreshold: 1}, store, nil)
	b.RecordFailure()
	require.True(t, b.IsOpen())

	logger := watermill.NopLogger{}
	pubSub := gochannel.NewGoChannel(gochannel.Config{BlockPublishUntilSubscriberAck: true}, logger)
	defer pubSub.Close()
	router, err := message.NewRouter(message.RouterConfig{}, logger)
	require.NoError(t, err)
	var handled atomic.Int32
	router.AddConsumerHandler("sync", "sync", pubSub, func(*message.Message) error {
		handled.Add(1)
		return nil
	})
	router.AddMiddleware(b.Middleware)

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	runErr := make(chan error, 1)
	go func() { runErr <- router.Run(ctx) }()
	select {
	case <-router.Running():
	case <-time.After(10 * time.Second):
		t.Fatal("router did not start")
	}

	for _, p := range []string{"a", "b"} {
		require.NoError(t, pubSub.Publish("sync", message.NewMessage(watermill.NewUUID(), []byte(p))))
	}
	assert.Equal(t, []string{"a", "b"}, store.payloads(), "each message spilled once, in order")
	assert.Zero(t, handled.Load(), "handler skipped while open")

	require.NoError(t, router.Close())
	cancel()
	require.NoError(t, <-runErr)
}

func TestMiddlewareMatrix(t *testing.T) {
	produced := []*message.Message{message.NewMessage("out", []byte("out"))}
	tests := []struct {
		name         string
		threshold    int
		open         bool
		spillMode    syncbreaker.SpillMode
		handlerErr   error
		appendErr    error
		wantCalled   bool
		wantProduced bool
		wantErr      error
		wantSpilled  []string
	}{
		{name: "closed success", threshold: 1, wantCalled: true, wantProduced: true},
		{name: "closed failure below threshold: spilled", threshold: 2, handlerErr: errServer, wantCalled: true, wantSpilled: []string{"in"}},
		{name: "closed failure below threshold, SpillWhenOpen", threshold: 2, spillMode: syncbreaker.SpillWhenOpen, handlerErr: errServer, wantCalled: true, wantErr: errServer},
		{name: "closed failure below threshold, spill error", threshold: 2, handlerErr: errServer, appendErr: errDisk, wantCalled: true, wantErr: errDisk},
		{name: "closed, store full: not spilled again", threshold: 2, handlerErr: syncbreaker.ErrStoreFull, wantCalled: true, wantErr: syncbreaker.ErrStoreFull},
		{name: "retry-after opens at once", threshold: 5, handlerErr: syncbreaker.RetryAfter(errServer, time.Minute), wantCalled: true, wantSpilled: []string{"in"}},
		{name: "closed failure trips", threshold: 1, handlerErr: errServer, wantCalled: true, wantSpilled: []string{"in"}},
		{name: "permanent", threshold: 1, handlerErr: syncbreaker.Permanent(errClient), wantCalled: true, wantErr: errClient},
		{name: "open", threshold: 1, open: true, wantSpilled: []string{"in"}},
		{name: "open spill error", threshold: 1, open: true, appendErr: errDisk, wantErr: errDisk},
		{name: "trip spill error", threshold: 1, handlerErr: errServer, appendErr: errDisk, wantCalled: true, wantErr: errDisk},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store := &memStore{appendErr: tt.appendErr}
			b := newBreaker(t, syncbreaker.Config{FailureThreshold: tt.threshold, SpillFailures: tt.spillMode}, store, nil)
			if tt.open {
				failN(b, tt.threshold)
			}
			called := false
			h := b.Middleware(func(msg *message.Message) ([]*message.Message, error) {
				called = true
				return produced, tt.handlerErr
			})
			out, err := h(message.NewMessage("id", []byte("in")))
			assert.Equal(t, tt.wantCalled, called)
			if tt.wantErr != nil {
				assert.ErrorIs(t, err, tt.wantErr)
			} else {
				assert.NoError(t, err)
			}
			if tt.wantProduced {
				assert.Equal(t, produced, out)
			} else {
				assert.Nil(t, out)
			}
			assert.Equal(t, tt.wantSpilled, store.payloads())
		})
	}
}

func TestMiddlewareUsesMessageContext(t *testing.T) {
	b := newBreaker(t, syncbreaker.Config{FailureThreshold: 1}, nil, nil)
	msg := message.NewMessage("id", []byte("in"))
	ctx, cancel := context.WithCancel(t.Context())
	msg.SetContext(ctx)
	h := b.Middleware(func(msg *message.Message) ([]*message.Message, error) {
		cancel()
		return nil, msg.Context().Err()
	})
	_, err := h(msg)
	assert.ErrorIs(t, err, context.Canceled)
	assert.Equal(t, syncbreaker.StateClosed, b.State(), "the caller's cancellation is not a server failure")
}

// For a republished message its republisher waits for, the middleware
// settles the record with the handler's outcome and always acks: a failure
// or an open circuit leaves the record pending in its place, never spilled
// again under a new ID and never nacked into a redelivery loop; so does a
// message whose Republish gave up waiting for it.
func TestMiddlewareSettlesRepublishedMessages(t *testing.T) {
	tests := []struct {
		name        string
		openBefore  bool  // the circuit is open when the message arrives
		handlerErr  error // what the wrapped handler returns
		threshold   int
		notAwaited  bool // the republisher gave up on the message first
		wantCalled  bool
		wantRepub   func(t *testing.T, err error)
		wantSpilled int
		wantState   syncbreaker.State
	}{
		{name: "handled", wantCalled: true, threshold: 3,
			wantRepub: func(t *testing.T, err error) { assert.NoError(t, err) }, wantState: syncbreaker.StateClosed},
		{name: "handler fails, circuit stays closed", handlerErr: errServer, threshold: 3, wantCalled: true,
			wantRepub: func(t *testing.T, err error) {
				assert.ErrorIs(t, err, syncbreaker.ErrNotHandled)
				assert.ErrorIs(t, err, errServer)
			}, wantState: syncbreaker.StateClosed},
		{name: "handler failure opens the circuit", handlerErr: errServer, threshold: 1, wantCalled: true,
			wantRepub: func(t *testing.T, err error) { assert.ErrorIs(t, err, syncbreaker.ErrNotHandled) }, wantState: syncbreaker.StateOpen},
		{name: "open before the handler", openBefore: true, threshold: 1,
			wantRepub: func(t *testing.T, err error) { assert.ErrorIs(t, err, syncbreaker.ErrOpen) }, wantState: syncbreaker.StateOpen},
		// The breaker's round gave up on it: the record stayed pending in
		// its place, so the message is acked, not spilled again (see
		// late_settle.go).
		{name: "republish gave up, open: acked, not spilled again", notAwaited: true, threshold: 1,
			wantRepub: func(t *testing.T, err error) { assert.ErrorIs(t, err, context.Canceled) }, wantSpilled: 1, wantState: syncbreaker.StateOpen},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				store := &memStore{}
				rig := newSettleRig(t, gochannel.Config{}, time.Hour)
				b := newBreaker(t, syncbreaker.Config{FailureThreshold: tt.threshold}, store, rig.rep)
				if tt.openBefore {
					failN(b, tt.threshold)
				}
				ctx, cancel := context.WithCancel(t.Context())
				defer cancel()
				var done <-chan error
				if tt.notAwaited {
					// Republished by the breaker's round, which gives up on
					// it when its context ends; then the circuit opens.
					require.NoError(t, store.Append(ctx, testRecords(1)[0].Payload))
					round := make(chan error, 1)
					go func() { _, err := b.RetryPending(ctx); round <- err }()
					done = round
				} else {
					done = rig.republishAsync(ctx, testRecords(1)[0])
				}
				msg := <-rig.msgs
				if tt.notAwaited {
					cancel()
					synctest.Wait()
					failN(b, tt.threshold)
				}
				called := false
				handler := b.Middleware(func(*message.Message) ([]*message.Message, error) {
					called = true
					return nil, tt.handlerErr
				})
				produced, err := handler(msg)
				msg.Ack()
				assert.NoError(t, err, "acked, never nacked")
				assert.Nil(t, produced)
				assert.Equal(t, tt.wantCalled, called)
				tt.wantRepub(t, <-done)
				assert.Len(t, store.records(), tt.wantSpilled)
				assert.Equal(t, tt.wantState, b.State())
			})
		})
	}
}
