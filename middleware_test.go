package syncbreaker_test

import (
	"context"
	"sync/atomic"
	"testing"
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
		handlerErr   error
		appendErr    error
		wantCalled   bool
		wantProduced bool
		wantErr      error
		wantSpilled  []string
	}{
		{name: "closed success", threshold: 1, wantCalled: true, wantProduced: true},
		{name: "closed failure below threshold", threshold: 2, handlerErr: errServer, wantCalled: true, wantErr: errServer},
		{name: "closed failure trips", threshold: 1, handlerErr: errServer, wantCalled: true, wantSpilled: []string{"in"}},
		{name: "permanent", threshold: 1, handlerErr: syncbreaker.Permanent(errClient), wantCalled: true, wantErr: errClient},
		{name: "open", threshold: 1, open: true, wantSpilled: []string{"in"}},
		{name: "open spill error", threshold: 1, open: true, appendErr: errDisk, wantErr: errDisk},
		{name: "trip spill error", threshold: 1, handlerErr: errServer, appendErr: errDisk, wantCalled: true, wantErr: errDisk},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store := &memStore{appendErr: tt.appendErr}
			b := newBreaker(t, syncbreaker.Config{FailureThreshold: tt.threshold}, store, nil)
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
