package syncbreaker_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/syncbreaker/syncbreaker"
)

// funcPublisher is a message.Publisher whose Publish calls publish (nil:
// accept and drop).
type funcPublisher struct {
	publish func(topic string, msgs ...*message.Message) error
}

func (p *funcPublisher) Publish(topic string, msgs ...*message.Message) error {
	if p.publish == nil {
		return nil
	}
	return p.publish(topic, msgs...)
}

func (p *funcPublisher) Close() error { return nil }

// nopPublisher accepts every message and drops it.
type nopPublisher = funcPublisher

// assertOnePrefix checks that err names the package exactly once, however
// many layers wrapped it, and leaks no payload.
func assertOnePrefix(t *testing.T, err error, payload []byte) {
	t.Helper()
	require.Error(t, err)
	assert.Equal(t, 1, strings.Count(err.Error(), "syncbreaker:"), "%q", err)
	if len(payload) > 0 {
		assert.NotContains(t, err.Error(), string(payload), "no payload in errors")
	}
}

// Every error path that can be triggered from outside names the package
// once: "syncbreaker: spill 100 bytes: store is full: ...", never
// "syncbreaker: spill 100 bytes: syncbreaker: store is full".
func TestErrorsNameThePackageOnce(t *testing.T) {
	ctx := context.Background()
	secret := []byte(`{"cmd":"export TOKEN=hunter2"}`)
	openStore := func(t *testing.T, cfg syncbreaker.StoreConfig) *syncbreaker.JSONLStore {
		t.Helper()
		s, err := syncbreaker.OpenJSONLStore(filepath.Join(t.TempDir(), "p.jsonl"), cfg)
		require.NoError(t, err)
		t.Cleanup(func() { _ = s.Close() })
		return s
	}
	closedStore := func(t *testing.T) *syncbreaker.JSONLStore {
		s := openStore(t, syncbreaker.StoreConfig{})
		require.NoError(t, s.Append(ctx, secret))
		require.NoError(t, s.Close())
		return s
	}
	openBreaker := func(t *testing.T, store syncbreaker.PendingStore, rep syncbreaker.Republisher) *syncbreaker.Breaker {
		b := newBreaker(t, syncbreaker.Config{FailureThreshold: 1, Jitter: -1}, store, rep)
		return b
	}
	fullStore := func(t *testing.T) *syncbreaker.JSONLStore { return openStore(t, syncbreaker.StoreConfig{MaxBytes: 1}) }

	t.Run("store full", func(t *testing.T) {
		err := fullStore(t).Append(ctx, secret)
		assert.ErrorIs(t, err, syncbreaker.ErrStoreFull)
		assertOnePrefix(t, err, secret)
	})
	t.Run("payload too large", func(t *testing.T) {
		err := openStore(t, syncbreaker.StoreConfig{MaxPayloadBytes: 4}).Append(ctx, secret)
		assert.ErrorIs(t, err, syncbreaker.ErrPayloadTooLarge)
		assertOnePrefix(t, err, secret)
	})
	t.Run("closed store", func(t *testing.T) {
		s := closedStore(t)
		err := s.Append(ctx, secret)
		assert.ErrorIs(t, err, syncbreaker.ErrStoreClosed)
		assertOnePrefix(t, err, secret)
		_, err = s.Replay(ctx, func(context.Context, syncbreaker.Record) error { return nil })
		assert.ErrorIs(t, err, syncbreaker.ErrStoreClosed)
		assertOnePrefix(t, err, secret)
	})
	t.Run("invalid configs", func(t *testing.T) {
		_, err := syncbreaker.OpenJSONLStore(filepath.Join(t.TempDir(), "p.jsonl"), syncbreaker.StoreConfig{Sync: 7})
		assertOnePrefix(t, err, nil)
		_, err = syncbreaker.NewRepublisher(&nopPublisher{}, "sync", syncbreaker.RepublisherConfig{Burst: -1})
		assertOnePrefix(t, err, nil)
		_, err = syncbreaker.New(syncbreaker.Config{Jitter: 2}, &memStore{}, &recordingRepublisher{})
		assertOnePrefix(t, err, nil)
	})
	t.Run("SaveForRetry into a full store", func(t *testing.T) {
		b := openBreaker(t, fullStore(t), &recordingRepublisher{})
		payload := make([]byte, 100)
		err := b.SaveForRetry(ctx, payload)
		assert.ErrorIs(t, err, syncbreaker.ErrStoreFull)
		assert.True(t, strings.HasPrefix(err.Error(), "syncbreaker: spill 100 bytes: store is full"), "%q", err)
		assertOnePrefix(t, err, nil)
	})
	t.Run("SaveForRetry into a closed store", func(t *testing.T) {
		b := openBreaker(t, closedStore(t), &recordingRepublisher{})
		err := b.SaveForRetry(ctx, secret)
		assert.ErrorIs(t, err, syncbreaker.ErrStoreClosed)
		assertOnePrefix(t, err, secret)
	})
	t.Run("Execute spilling into a full store", func(t *testing.T) {
		b := openBreaker(t, fullStore(t), &recordingRepublisher{})
		down := errors.New("503 from the server")
		err := b.Execute(ctx, secret, func(context.Context) error { return down })
		assert.ErrorIs(t, err, down, "the send error is returned with the spill error")
		assert.ErrorIs(t, err, syncbreaker.ErrStoreFull)
		assertOnePrefix(t, err, secret)
		require.True(t, b.IsOpen())
		err = b.Execute(ctx, secret, func(context.Context) error { return nil })
		assert.ErrorIs(t, err, syncbreaker.ErrStoreFull, "open: spilled without sending")
		assertOnePrefix(t, err, secret)
	})
	t.Run("Middleware spilling into a full store", func(t *testing.T) {
		b := openBreaker(t, fullStore(t), &recordingRepublisher{})
		b.RecordFailure()
		_, err := b.Middleware(func(*message.Message) ([]*message.Message, error) { return nil, nil })(
			message.NewMessage("m1", secret))
		assert.ErrorIs(t, err, syncbreaker.ErrStoreFull)
		assertOnePrefix(t, err, secret)
	})
	t.Run("Republish without an ID", func(t *testing.T) {
		r := newTestRepublisher(t, &nopPublisher{}, syncbreaker.RepublisherConfig{})
		assertOnePrefix(t, r.Republish(ctx, syncbreaker.Record{Payload: secret}), secret)
	})
	t.Run("Publish fails", func(t *testing.T) {
		for _, perr := range []error{errors.New("broker down"), syncbreaker.ErrStoreFull} {
			r := newTestRepublisher(t, &funcPublisher{publish: func(string, ...*message.Message) error { return perr }},
				syncbreaker.RepublisherConfig{})
			err := r.Republish(ctx, syncbreaker.Record{ID: "rec-1", Payload: secret})
			assert.ErrorIs(t, err, perr)
			assert.Contains(t, err.Error(), "rec-1")
			assertOnePrefix(t, err, secret)
		}
	})
	t.Run("handler settles with an error", func(t *testing.T) {
		for _, herr := range []error{errors.New("503"), syncbreaker.ErrOpen} {
			var r *syncbreaker.TopicRepublisher
			r = newTestRepublisher(t, &funcPublisher{publish: func(_ string, msgs ...*message.Message) error {
				r.Settle(msgs[0], herr)
				return nil
			}}, syncbreaker.RepublisherConfig{SettleTimeout: time.Minute})
			err := r.Republish(ctx, syncbreaker.Record{ID: "rec-1", Payload: secret})
			assert.ErrorIs(t, err, syncbreaker.ErrNotHandled)
			assert.ErrorIs(t, err, herr)
			assertOnePrefix(t, err, secret)
		}
	})
	t.Run("settle timeout", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			r := newTestRepublisher(t, &nopPublisher{}, syncbreaker.RepublisherConfig{SettleTimeout: time.Second})
			err := r.Republish(ctx, syncbreaker.Record{ID: "rec-1", Payload: secret})
			assert.ErrorIs(t, err, syncbreaker.ErrSettleTimeout)
			assertOnePrefix(t, err, secret)
		})
	})
	t.Run("RetryPending", func(t *testing.T) {
		tests := []struct {
			name   string
			pubErr error
			closed bool
		}{
			{name: "publish fails", pubErr: errors.New("broker down")},
			{name: "publish fails with a syncbreaker error", pubErr: syncbreaker.ErrStoreClosed},
			{name: "store closed", closed: true},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				var store *syncbreaker.JSONLStore
				if tt.closed {
					store = closedStore(t)
				} else {
					store = openStore(t, syncbreaker.StoreConfig{})
					require.NoError(t, store.Append(ctx, secret))
				}
				r := newTestRepublisher(t, &funcPublisher{publish: func(string, ...*message.Message) error { return tt.pubErr }},
					syncbreaker.RepublisherConfig{})
				b := newBreaker(t, syncbreaker.Config{}, store, r)
				_, err := b.RetryPending(ctx)
				assertOnePrefix(t, err, secret)
				if tt.pubErr != nil {
					assert.ErrorIs(t, err, tt.pubErr)
				}
			})
		}
		t.Run("the failure opens the circuit", func(t *testing.T) {
			store := openStore(t, syncbreaker.StoreConfig{})
			require.NoError(t, store.Append(ctx, secret))
			var b *syncbreaker.Breaker
			r := newTestRepublisher(t, &funcPublisher{publish: func(string, ...*message.Message) error {
				b.RecordFailure()
				return errors.New("broker down")
			}}, syncbreaker.RepublisherConfig{})
			b = openBreaker(t, store, r)
			_, err := b.RetryPending(ctx)
			assert.ErrorIs(t, err, syncbreaker.ErrOpen)
			assertOnePrefix(t, err, secret)
			_, err = b.RetryPending(ctx)
			assert.ErrorIs(t, err, syncbreaker.ErrOpen)
			assertOnePrefix(t, err, secret)
		})
	})
}
