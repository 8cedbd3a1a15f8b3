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

// A message spilled by the middleware into a JSONLStore keeps its UUID as
// the record ID, and a republished message keeps its enqueue time and
// counts one more attempt, so a message spilled twice (a broker redelivery
// after a crash, or a republish that met a new outage) goes back out under
// the same UUID.
func TestMiddlewareSpillKeepsMessageIdentity(t *testing.T) {
	store, err := syncbreaker.OpenJSONLStore(t.TempDir()+"/pending.jsonl", syncbreaker.StoreConfig{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = store.Close() })
	b := newBreaker(t, syncbreaker.Config{FailureThreshold: 1}, store, nil)
	b.RecordFailure()
	require.True(t, b.IsOpen())

	handler := b.Middleware(func(*message.Message) ([]*message.Message, error) {
		t.Fatal("handler called while open")
		return nil, nil
	})
	spilledAt := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	fresh := message.NewMessage("0f8fad5b-d9cb-469f-a165-70867728950e", []byte(`{"cmd":"ls"}`))
	again := message.NewMessage("0f8fad5b-d9cb-469f-a165-70867728950e", []byte(`{"cmd":"ls"}`))
	back := message.NewMessage("01a21b33-42ea-7000-b0fa-90b997ce8249", []byte(`{"cmd":"pwd"}`))
	back.Metadata.Set(syncbreaker.MetadataRepublished, "true")
	back.Metadata.Set(syncbreaker.MetadataEnqueuedAt, spilledAt.Format(time.RFC3339Nano))
	back.Metadata.Set(syncbreaker.MetadataAttempts, "2")
	for _, msg := range []*message.Message{fresh, again, back} {
		_, err := handler(msg)
		require.NoError(t, err)
	}

	var got []syncbreaker.Record
	_, err = store.Replay(context.Background(), func(_ context.Context, rec syncbreaker.Record) error {
		got = append(got, rec)
		return nil
	})
	require.NoError(t, err)
	require.Len(t, got, 3)
	assert.Equal(t, fresh.UUID, got[0].ID)
	assert.Equal(t, fresh.UUID, got[1].ID, "a redelivered message is spilled under the same ID")
	assert.Equal(t, 0, got[0].Attempts)
	assert.Equal(t, back.UUID, got[2].ID)
	assert.Equal(t, 3, got[2].Attempts)
	assert.True(t, spilledAt.Equal(got[2].EnqueuedAt), "EnqueuedAt %v", got[2].EnqueuedAt)
}
