package syncbreaker_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/gochannel"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/syncbreaker/syncbreaker"
)

// countingRepublisher decorates the library's republisher as Go code
// does: it embeds it and counts in Republish.
type countingRepublisher struct {
	*syncbreaker.TopicRepublisher
	n atomic.Int64
}

func (c *countingRepublisher) Republish(ctx context.Context, rec syncbreaker.Record) error {
	c.n.Add(1)
	return c.TopicRepublisher.Republish(ctx, rec)
}

// countingStore decorates the JSONLStore the same way.
type countingStore struct {
	*syncbreaker.JSONLStore
	appends atomic.Int64
}

func (c *countingStore) Append(ctx context.Context, payload []byte) error {
	c.appends.Add(1)
	return c.JSONLStore.Append(ctx, payload)
}

// hidingRepublisher wraps a republisher in a field: only Republish is
// left.
type hidingRepublisher struct{ r syncbreaker.Republisher }

func (h hidingRepublisher) Republish(ctx context.Context, rec syncbreaker.Record) error {
	return h.r.Republish(ctx, rec)
}

// capRig is a daemon with a real JSONLStore, a default GoChannel and
// handlers run by loops the test controls.
type capRig struct {
	store *syncbreaker.JSONLStore
	bus   *gochannel.GoChannel
	rep   *syncbreaker.TopicRepublisher
	msgs  <-chan *message.Message
}

func newCapRig(t *testing.T, cfg syncbreaker.RepublisherConfig) *capRig {
	t.Helper()
	store, err := syncbreaker.OpenJSONLStore(filepath.Join(t.TempDir(), "p.jsonl"), syncbreaker.StoreConfig{})
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, store.Close()) })
	bus := newGoChannel(t, gochannel.Config{})
	msgs, err := bus.Subscribe(t.Context(), testTopic)
	require.NoError(t, err)
	if cfg.Rate == 0 {
		cfg.Rate = 10_000
	}
	if cfg.SettleTimeout == 0 {
		cfg.SettleTimeout = time.Minute
	}
	return &capRig{store: store, bus: bus, rep: newTestRepublisher(t, bus, cfg), msgs: msgs}
}

func (r *capRig) seed(t *testing.T, payloads ...string) []syncbreaker.Record {
	t.Helper()
	for _, p := range payloads {
		require.NoError(t, r.store.Append(t.Context(), []byte(p)))
	}
	return peek(t, r.store)
}

// loop runs the README's processor loop with handle on n goroutines until
// the bus closes.
func (r *capRig) loop(t *testing.T, b *syncbreaker.Breaker, n int, handle func(*message.Message) error) {
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			for msg := range r.msgs {
				err := handle(msg)
				if b.Settle(msg, err) || err == nil {
					msg.Ack()
				} else {
					msg.Nack()
				}
			}
		})
	}
	t.Cleanup(func() {
		_ = r.bus.Close()
		wg.Wait()
	})
}

// Embedding decorators of both parts keep every feature: the window, the
// re-spill in place and late settles; every record goes through the
// decorator's Republish.
func TestEmbeddingDecoratorsKeepEveryFeature(t *testing.T) {
	rig := newCapRig(t, syncbreaker.RepublisherConfig{MaxInFlight: 4, FixedPace: true}) // 4 in flight from the first record
	rep := &countingRepublisher{TopicRepublisher: rig.rep}
	store := &countingStore{JSONLStore: rig.store}
	b := newBreaker(t, syncbreaker.Config{}, store, rep)
	assert.Equal(t, syncbreaker.Features{Settle: true, Window: 4, Respill: true, LateSettle: true}, b.Features(), "FixedPace: no adaptive pace")

	recs := rig.seed(t, `"a"`, `"b"`, `"c"`, `"d"`, `"e"`, `"f"`, `"g"`, `"h"`)
	var (
		mu        sync.Mutex
		inHandler int
		peak      int
		arrived   = make(chan struct{}, len(recs))
		release   = make(chan struct{})
	)
	rig.loop(t, b, 4, func(msg *message.Message) error {
		mu.Lock()
		inHandler++
		peak = max(peak, inHandler)
		mu.Unlock()
		arrived <- struct{}{}
		<-release
		mu.Lock()
		inHandler--
		mu.Unlock()
		if msg.UUID == recs[1].ID {
			// Spilled again, reshaped, as the first user's handler does.
			return b.SaveForRetry(msg.Context(), []byte(`{"again":"b"}`))
		}
		return nil
	})
	done := make(chan error, 1)
	go func() { _, err := b.RetryPending(t.Context()); done <- err }()
	for range 4 {
		<-arrived
	}
	close(release)
	require.NoError(t, <-done)
	assert.Equal(t, 4, peak, "MaxInFlight records in the handler at once, through the decorator")
	assert.Equal(t, int64(len(recs)), rep.n.Load(), "every record went through the decorator's Republish")

	after := peek(t, store)
	require.Len(t, after, 1, "the re-spilled record only; its copy is discarded")
	assert.Equal(t, recs[1].ID, after[0].ID, "b kept its ID")
	assert.Equal(t, `{"again":"b"}`, string(after[0].Payload), "with the bytes the handler spilled")
}

// A decorator that hides the capabilities turns them off, and New says
// which and why.
func TestHidingDecoratorIsNamedAtNew(t *testing.T) {
	rig := newCapRig(t, syncbreaker.RepublisherConfig{MaxInFlight: 4})
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	b := newBreaker(t, syncbreaker.Config{Logger: log}, rig.store, hidingRepublisher{rig.rep})
	assert.Equal(t, syncbreaker.Features{Window: 1, LateSettle: true}, b.Features())
	assert.Contains(t, logs.String(), "features off")
	assert.Contains(t, logs.String(), "syncbreaker_test.hidingRepublisher is not a Settler")
	assert.Contains(t, logs.String(), "syncbreaker_test.hidingRepublisher is not a PaceController")

	logs.Reset()
	newBreaker(t, syncbreaker.Config{Logger: log}, rig.store, rig.rep)
	assert.NotContains(t, logs.String(), "features off", "nothing is off undecorated")
}

// A handler that spills a republished message again with msg.Context()
// keeps the record's ID and place, with the bytes it spilled, whatever they
// are; nothing is delivered twice.
func TestRespillKeepsIDAndPlaceWithNewBytes(t *testing.T) {
	reshape := map[string]func(p []byte) []byte{
		"re-marshalled": func(p []byte) []byte {
			var v any
			if err := json.Unmarshal(p, &v); err != nil {
				panic(err)
			}
			out, _ := json.MarshalIndent(map[string]any{"type": "sync", "payload": v}, "", " ")
			return out
		},
		"changed in place": func(p []byte) []byte { p[1] = 'X'; return p },
		"shorter":          func(p []byte) []byte { return []byte(`"s"`) },
		"longer":           func(p []byte) []byte { return append(append([]byte(`[`), p...), `,"more"]`...) },
		"empty":            func(p []byte) []byte { return []byte{} },
	}
	for name, fn := range reshape {
		t.Run(name, func(t *testing.T) {
			rig := newCapRig(t, syncbreaker.RepublisherConfig{})
			b := newBreaker(t, syncbreaker.Config{}, rig.store, rig.rep)
			recs := rig.seed(t, `"first"`, `"second"`, `"third"`)
			var want []byte
			rig.loop(t, b, 1, func(msg *message.Message) error {
				if msg.UUID != recs[1].ID {
					return nil // sent
				}
				p := fn(msg.Payload)
				want = bytes.Clone(p)
				failN(b, 10) // the circuit opens; the handler spills
				return b.SaveForRetry(msg.Context(), p)
			})
			_, err := b.RetryPending(t.Context())
			require.ErrorIs(t, err, syncbreaker.ErrOpen)
			after := peek(t, rig.store)
			require.Len(t, after, 2, "second in place, third untouched; the copy discarded")
			assert.Equal(t, recs[1].ID, after[0].ID)
			assert.Equal(t, string(want), string(after[0].Payload))
			assert.Zero(t, after[0].Attempts, "the circuit was open: not an attempt")
			assert.Equal(t, recs[2], after[1])
		})
	}
}

// A fresh message spilled while a republished one is in the handler is
// never taken for it: both survive, each under its own ID.
func TestFreshSpillIsNotTakenForTheRepublishedOne(t *testing.T) {
	rig := newCapRig(t, syncbreaker.RepublisherConfig{})
	b := newBreaker(t, syncbreaker.Config{}, rig.store, rig.rep)
	recs := rig.seed(t, `"republished"`)
	freshDone := make(chan struct{})
	rig.loop(t, b, 2, func(msg *message.Message) error {
		if msg.UUID == recs[0].ID {
			assert.NoError(t, rig.bus.Publish(testTopic, message.NewMessage("fresh-1", []byte(`"fresh"`)))) // not require: this is the loop's goroutine
			<-freshDone                                                                                     // the fresh message is spilled and settled first
			return b.SaveForRetry(msg.Context(), []byte(`"republished, again"`))
		}
		defer close(freshDone)
		return b.SaveForRetry(msg.Context(), msg.Payload)
	})
	res, err := b.RetryPending(t.Context())
	require.NoError(t, err)
	assert.Equal(t, 1, res.Failed, "the republished record was not sent: an attempt")
	after := peek(t, rig.store)
	require.Len(t, after, 2, "both survive")
	assert.Equal(t, recs[0].ID, after[0].ID, "the republished record in its place")
	assert.Equal(t, `"republished, again"`, string(after[0].Payload))
	assert.Equal(t, `"fresh"`, string(after[1].Payload), "the fresh payload, a record of its own")
	assert.NotEqual(t, recs[0].ID, after[1].ID)
}
