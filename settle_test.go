package syncbreaker_test

import (
	"context"
	"errors"
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
	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"

	"github.com/syncbreaker/syncbreaker"
	"github.com/syncbreaker/syncbreaker/mocks"
)

// settleRig is a default GoChannel (Publish returns before any handler
// runs, the first user's bus) with one subscriber, and a republisher that
// waits for settles.
type settleRig struct {
	bus  *gochannel.GoChannel
	msgs <-chan *message.Message
	rep  *syncbreaker.TopicRepublisher
}

func newSettleRig(t *testing.T, cfg gochannel.Config, timeout time.Duration) *settleRig {
	t.Helper()
	bus := newGoChannel(t, cfg)
	msgs, err := bus.Subscribe(t.Context(), testTopic)
	require.NoError(t, err)
	return &settleRig{
		bus:  bus,
		msgs: msgs,
		rep:  newTestRepublisher(t, bus, syncbreaker.RepublisherConfig{Rate: 1000, SettleTimeout: timeout}),
	}
}

// republishAsync runs Republish on its own goroutine; the result arrives
// on the returned channel.
func (r *settleRig) republishAsync(ctx context.Context, rec syncbreaker.Record) <-chan error {
	done := make(chan error, 1)
	go func() { done <- r.rep.Republish(ctx, rec) }()
	return done
}

// pending reports whether done has not delivered yet, once every goroutine
// of the bubble is blocked.
func pending(done <-chan error) bool {
	synctest.Wait()
	select {
	case err := <-done:
		panic("Republish returned early: " + errString(err))
	default:
		return true
	}
}

func errString(err error) string {
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}

// With SettleTimeout, Republish returns only once the handler settled the
// message: publishing to a default GoChannel says nothing about delivery.
func TestRepublishWaitsForSettle(t *testing.T) {
	handlerErr := errors.New("server answered 503")
	tests := []struct {
		name    string
		settle  error
		check   func(t *testing.T, err error)
		attempt bool
	}{
		{name: "handled", check: func(t *testing.T, err error) { assert.NoError(t, err) }},
		{name: "handler failed", settle: handlerErr, check: func(t *testing.T, err error) {
			assert.ErrorIs(t, err, syncbreaker.ErrNotHandled)
			assert.ErrorIs(t, err, handlerErr)
			assert.False(t, syncbreaker.IsPermanent(err))
			assert.Contains(t, err.Error(), "rec-0000000")
		}},
		{name: "permanent", settle: syncbreaker.Permanent(handlerErr), check: func(t *testing.T, err error) {
			assert.ErrorIs(t, err, syncbreaker.ErrNotHandled)
			assert.True(t, syncbreaker.IsPermanent(err), "a Permanent verdict reaches the store")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				rig := newSettleRig(t, gochannel.Config{}, time.Minute)
				rec := testRecords(1)[0]
				done := rig.republishAsync(t.Context(), rec)
				msg := <-rig.msgs
				assert.Equal(t, rec.ID, msg.UUID)
				require.True(t, pending(done), "Republish must wait for the settle")

				require.True(t, rig.rep.Settle(msg, tt.settle))
				msg.Ack()
				tt.check(t, <-done)
				assert.False(t, rig.rep.Settle(msg, nil), "settled once already")
			})
		})
	}
}

// With BlockPublishUntilSubscriberAck the handler settles before Publish
// returns: the waiter is registered before publishing, so that settle is
// not missed (it would otherwise time out and deliver the record twice).
func TestSettleBeforePublishReturns(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rig := newSettleRig(t, gochannel.Config{BlockPublishUntilSubscriberAck: true}, time.Minute)
		var settled atomic.Bool
		go func() {
			for msg := range rig.msgs {
				settled.Store(rig.rep.Settle(msg, nil))
				msg.Ack()
			}
		}()
		start := time.Now()
		require.NoError(t, rig.rep.Republish(t.Context(), testRecords(1)[0]))
		assert.True(t, settled.Load())
		assert.Zero(t, time.Since(start), "no wait for a timeout")
	})
}

// A timeout and a cancelled context keep the record (the caller sees an
// error) and forget the waiter, so the republisher's own Settle reports
// false; a Breaker remembers the records its rounds gave up on and
// settles them late (TestLateSettleIsNotDeliveredAgain).
func TestRepublishSettleTimeoutAndCancel(t *testing.T) {
	t.Run("timeout", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			rig := newSettleRig(t, gochannel.Config{}, 30*time.Second)
			rec := testRecords(1)[0]
			start := time.Now()
			done := rig.republishAsync(t.Context(), rec)
			msg := <-rig.msgs
			err := <-done
			assert.Equal(t, 30*time.Second, time.Since(start))
			require.ErrorIs(t, err, syncbreaker.ErrSettleTimeout)
			assert.ErrorIs(t, err, syncbreaker.ErrNotAttempted, "a timeout is not a failed delivery")
			assert.Contains(t, err.Error(), rec.ID)
			assert.False(t, rig.rep.Settle(msg, nil), "no longer awaited")
			msg.Ack()
		})
	})
	t.Run("cancel", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			rig := newSettleRig(t, gochannel.Config{}, time.Hour)
			ctx, cancel := context.WithCancel(t.Context())
			done := rig.republishAsync(ctx, testRecords(1)[0])
			msg := <-rig.msgs
			require.True(t, pending(done))
			cancel()
			assert.ErrorIs(t, <-done, context.Canceled)
			assert.False(t, rig.rep.Settle(msg, nil), "no longer awaited")
			msg.Ack()
		})
	})
}

// A failed Publish removes the waiter and returns the publish error.
func TestRepublishSettlePublishFails(t *testing.T) {
	errBroker := errors.New("broker unavailable")
	pub := mocks.NewPublisher(t)
	var published *message.Message
	pub.EXPECT().Publish(testTopic, mock.Anything).RunAndReturn(func(_ string, msgs ...*message.Message) error {
		published = msgs[0]
		return errBroker
	}).Once()
	r := newTestRepublisher(t, pub, syncbreaker.RepublisherConfig{SettleTimeout: time.Hour})

	err := r.Republish(t.Context(), testRecords(1)[0])
	require.ErrorIs(t, err, errBroker)
	assert.NotErrorIs(t, err, syncbreaker.ErrNotHandled)
	assert.False(t, r.Settle(published, nil), "the waiter is gone")
}

// Settle answers false, at the cost of a metadata lookup and without
// allocating, for every message its republisher is not waiting for.
func TestSettleIgnoresMessagesItDoesNotWaitFor(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rig := newSettleRig(t, gochannel.Config{}, time.Hour)
		other := newSettleRig(t, gochannel.Config{}, time.Hour)
		plain := newTestRepublisher(t, rig.bus, syncbreaker.RepublisherConfig{})

		rec := testRecords(1)[0]
		done := other.republishAsync(t.Context(), rec)
		foreign := <-other.msgs // same UUID, another republisher's message
		fresh := message.NewMessage(watermill.NewUUID(), []byte(`{"cmd":"ls"}`))
		forged := message.NewMessage(rec.ID, nil)
		forged.Metadata.Set(syncbreaker.MetadataSettleToken, "not-the-token")

		for name, msg := range map[string]*message.Message{"fresh": fresh, "foreign": foreign, "forged": forged, "nil": nil} {
			assert.False(t, rig.rep.Settle(msg, nil), name)
			assert.False(t, plain.Settle(msg, nil), name+" (no SettleTimeout)")
			if msg != nil {
				assert.Zero(t, testing.AllocsPerRun(100, func() { rig.rep.Settle(msg, nil) }), name)
			}
		}
		require.True(t, pending(done), "other's Republish still waits")
		require.True(t, other.rep.Settle(foreign, nil))
		require.NoError(t, <-done)
		foreign.Ack()
		assert.Zero(t, testing.AllocsPerRun(100, func() { other.rep.Settle(foreign, nil) }), "already settled")
	})
}

// Many goroutines settling the same message: exactly one wins, none
// blocks, and Settle after the bus closed is still safe.
func TestSettleConcurrentAndAfterClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rig := newSettleRig(t, gochannel.Config{}, time.Hour)
		done := rig.republishAsync(t.Context(), testRecords(1)[0])
		msg := <-rig.msgs
		var wins atomic.Int32
		var wg sync.WaitGroup
		for i := range 16 {
			wg.Go(func() {
				var err error
				if i%2 == 1 {
					err = errServer
				}
				if rig.rep.Settle(msg, err) {
					wins.Add(1)
				}
			})
		}
		wg.Wait()
		assert.Equal(t, int32(1), wins.Load())
		<-done
		msg.Ack()
		require.NoError(t, rig.bus.Close())
		assert.False(t, rig.rep.Settle(msg, nil))
	})
}

// MaxInFlight records wait for their settles at once, each settled on its
// own; the next Republish waits for a free slot.
func TestSettleWithSeveralInFlight(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		bus := newGoChannel(t, gochannel.Config{})
		msgs, err := bus.Subscribe(t.Context(), testTopic)
		require.NoError(t, err)
		rep := newTestRepublisher(t, bus, syncbreaker.RepublisherConfig{Rate: 1000, MaxInFlight: 3, SettleTimeout: time.Hour})
		recs := testRecords(4)
		results := make([]chan error, len(recs))
		for i, rec := range recs {
			results[i] = make(chan error, 1)
			go func() { results[i] <- rep.Republish(t.Context(), rec) }()
		}
		got := map[string]*message.Message{}
		for range 3 {
			msg := <-msgs
			got[msg.UUID] = msg
		}
		synctest.Wait()
		require.Len(t, got, 3, "the fourth waits for a slot")
		for _, msg := range got { // settle in any order
			require.True(t, rep.Settle(msg, nil))
			msg.Ack()
		}
		last := <-msgs
		require.True(t, rep.Settle(last, errServer))
		last.Ack()
		var handled, refused int
		for _, ch := range results {
			if err := <-ch; err == nil {
				handled++
			} else {
				assert.ErrorIs(t, err, syncbreaker.ErrNotHandled)
				refused++
			}
		}
		assert.Equal(t, 3, handled)
		assert.Equal(t, 1, refused)
	})
}

// A message the daemon handles after its Republish gave up waiting
// (SettleTimeout) is not delivered again: the late Settle returns true (the
// daemon acks it) and tells the store, which removes the record at the next
// round without republishing it. A late failure leaves it pending.
func TestLateSettleIsNotDeliveredAgain(t *testing.T) {
	for _, late := range []error{nil, errors.New("server refused it")} {
		t.Run(errString(late), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				store, err := syncbreaker.OpenJSONLStore(filepath.Join(t.TempDir(), "p.jsonl"), syncbreaker.StoreConfig{})
				require.NoError(t, err)
				t.Cleanup(func() { _ = store.Close() })
				rig := newSettleRig(t, gochannel.Config{}, 30*time.Second)
				b, err := syncbreaker.New(syncbreaker.Config{}, store, rig.rep)
				require.NoError(t, err)
				recs := testRecords(3)
				for _, r := range recs {
					require.NoError(t, store.Append(t.Context(), r.Payload))
				}
				type round struct {
					res syncbreaker.ReplayResult
					err error
				}
				done := make(chan round, 1)
				retry := func() {
					go func() {
						res, err := b.RetryPending(t.Context())
						done <- round{res, err}
					}()
				}

				retry()
				slow := <-rig.msgs // the handler takes longer than SettleTimeout
				first := <-done
				require.ErrorIs(t, first.err, syncbreaker.ErrSettleTimeout)
				require.True(t, b.Settle(slow, late), "handled late: ack it")
				slow.Ack()

				retry()
				var got [][]byte
				for second := (round{}); ; {
					select {
					case msg := <-rig.msgs:
						got = append(got, msg.Payload)
						require.True(t, b.Settle(msg, nil))
						msg.Ack()
						continue
					case second = <-done:
					}
					require.NoError(t, second.err)
					break
				}
				if late == nil {
					assert.Equal(t, [][]byte{recs[1].Payload, recs[2].Payload}, got, "the late-handled record is not delivered again")
				} else {
					assert.Equal(t, [][]byte{recs[0].Payload, recs[1].Payload, recs[2].Payload}, got, "a late failure stays pending")
				}
				assert.Zero(t, store.Stats().PendingRecords)
			})
		})
	}
}
