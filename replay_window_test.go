package syncbreaker_test

import (
	"errors"
	"path/filepath"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/gochannel"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/syncbreaker/syncbreaker"
)

// With a JSONLStore and a TopicRepublisher whose MaxInFlight is 4, a round
// keeps 4 records in flight while the circuit is closed, and applies their
// settles in the records' order: a record the handler refused stays in its
// place. While half-open it sends one record at a time: the probe first.
func TestReplayKeepsMaxInFlightRecordsInFlight(t *testing.T) {
	for _, state := range []syncbreaker.State{syncbreaker.StateClosed, syncbreaker.StateHalfOpen} {
		t.Run(state.String(), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				store, err := syncbreaker.OpenJSONLStore(filepath.Join(t.TempDir(), "p.jsonl"), syncbreaker.StoreConfig{})
				require.NoError(t, err)
				t.Cleanup(func() { _ = store.Close() })
				bus := newGoChannel(t, gochannel.Config{OutputChannelBuffer: 16})
				msgs, err := bus.Subscribe(t.Context(), testTopic)
				require.NoError(t, err)
				rep := newTestRepublisher(t, bus, syncbreaker.RepublisherConfig{Rate: 1000, Burst: 16, MaxInFlight: 4, SettleTimeout: time.Hour, FixedPace: true})
				var b *syncbreaker.Breaker
				if state == syncbreaker.StateHalfOpen {
					b = halfOpenBreaker(t, syncbreaker.Config{}, store, rep)
				} else {
					b = newBreaker(t, syncbreaker.Config{}, store, rep)
				}
				recs := testRecords(10)
				for _, r := range recs {
					require.NoError(t, store.Append(t.Context(), r.Payload))
				}
				done := make(chan error, 1)
				go func() {
					_, err := b.RetryPending(t.Context())
					done <- err
				}()

				// inFlight takes every message published and not yet settled.
				inFlight := func() []*message.Message {
					synctest.Wait()
					var out []*message.Message
					for len(msgs) > 0 {
						out = append(out, <-msgs)
					}
					return out
				}
				settle := func(batch []*message.Message, refuse []byte) {
					for _, msg := range slices.Backward(batch) { // the last first: order comes from the store
						var err error
						if string(msg.Payload) == string(refuse) {
							err = errors.New("server refused it")
						}
						if state == syncbreaker.StateHalfOpen && b.State() == syncbreaker.StateHalfOpen {
							require.False(t, b.IsOpen(), "the probe")
							b.RecordSuccess()
						}
						require.True(t, b.Settle(msg, err))
						msg.Ack()
					}
				}
				var sizes []int
				if state == syncbreaker.StateHalfOpen {
					probe := inFlight()
					sizes = append(sizes, len(probe))
					settle(probe, nil)
				}
				for {
					batch := inFlight()
					if len(batch) == 0 {
						break
					}
					sizes = append(sizes, len(batch))
					settle(batch, recs[5].Payload)
				}
				require.NoError(t, <-done)
				if state == syncbreaker.StateHalfOpen {
					assert.Equal(t, []int{1, 4, 4, 1}, sizes, "the probe alone, then 4 at a time")
				} else {
					assert.Equal(t, []int{4, 4, 2}, sizes, "4 at a time")
				}
				st := store.Stats()
				assert.EqualValues(t, 1, st.PendingRecords, "the refused record stays")
			})
		})
	}
}
