package syncbreaker_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/gochannel"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/syncbreaker/syncbreaker"
)

// These tests drive the breaker as its first user does: a default
// GoChannel, one goroutine ranging over the subscription, and a handler
// that calls IsOpen, SaveForRetry, RecordFailure and RecordSuccess, then
// settles and acks.

// loopDaemon is that daemon, over a real JSONLStore.
type loopDaemon struct {
	store   *syncbreaker.JSONLStore
	bus     *gochannel.GoChannel
	breaker *syncbreaker.Breaker
	// server answers a send; nil accepts everything.
	server func(payload []byte) error

	mu        sync.Mutex
	delivered []string // payloads the server accepted, in order
	done      chan struct{}
}

func newLoopDaemon(t *testing.T, storeCfg syncbreaker.StoreConfig, cfg syncbreaker.Config, server func([]byte) error) *loopDaemon {
	t.Helper()
	store, err := syncbreaker.OpenJSONLStore(filepath.Join(t.TempDir(), "sync-pending.jsonl"), storeCfg)
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, store.Close()) })
	bus := newGoChannel(t, gochannel.Config{})
	rep := newTestRepublisher(t, bus, syncbreaker.RepublisherConfig{Rate: 10_000, SettleTimeout: time.Minute})
	d := &loopDaemon{store: store, bus: bus, breaker: newBreaker(t, cfg, store, rep), server: server, done: make(chan struct{})}
	msgs, err := bus.Subscribe(t.Context(), testTopic)
	require.NoError(t, err)
	go d.loop(msgs)
	t.Cleanup(func() {
		assert.NoError(t, bus.Close())
		<-d.done
	})
	return d
}

// handle is the first user's handler, unchanged: it knows nothing of
// republishing.
func (d *loopDaemon) handle(msg *message.Message) error {
	ctx := msg.Context()
	if d.breaker.IsOpen() {
		return d.breaker.SaveForRetry(ctx, msg.Payload)
	}
	if d.server != nil {
		if err := d.server(msg.Payload); err != nil {
			d.breaker.RecordFailure()
			return d.breaker.SaveForRetry(ctx, msg.Payload)
		}
	}
	d.breaker.RecordSuccess()
	d.mu.Lock()
	d.delivered = append(d.delivered, string(msg.Payload))
	d.mu.Unlock()
	return nil
}

// loop is the processor: handle, settle, ack.
func (d *loopDaemon) loop(msgs <-chan *message.Message) {
	defer close(d.done)
	for msg := range msgs {
		err := d.handle(msg)
		if d.breaker.Settle(msg, err) || err == nil {
			msg.Ack()
		} else {
			msg.Nack()
		}
	}
}

func (d *loopDaemon) append(t *testing.T, payloads ...string) {
	t.Helper()
	for _, p := range payloads {
		require.NoError(t, d.store.Append(t.Context(), []byte(p)))
	}
}

func (d *loopDaemon) deliveredPayloads() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.delivered...)
}

// peek returns what the store holds, leaving it as it was: a callback that
// says it did not try a record keeps it untouched.
func peek(t *testing.T, s syncbreaker.PendingStore) []syncbreaker.Record {
	t.Helper()
	var recs []syncbreaker.Record
	_, err := s.Replay(t.Context(), func(_ context.Context, r syncbreaker.Record) error {
		recs = append(recs, r)
		return syncbreaker.ErrNotAttempted
	})
	require.NoError(t, err)
	return recs
}

func payloadsOf(recs []syncbreaker.Record) []string {
	var out []string
	for _, r := range recs {
		out = append(out, string(r.Payload))
	}
	return out
}

var errRejected = errors.New("server answered 500")

// A record the server keeps rejecting while it takes everything else does
// not block the records behind it: each round counts its attempt durably
// and goes on, and MaxAttempts dead-letters it.
func TestPoisonRecordAtTheHeadDoesNotBlockTheBacklog(t *testing.T) {
	d := newLoopDaemon(t, syncbreaker.StoreConfig{MaxAttempts: 3}, syncbreaker.Config{}, func(p []byte) error {
		if string(p) == `"poison"` {
			return errRejected
		}
		return nil
	})
	d.append(t, `"poison"`, `"a"`, `"b"`)

	res, err := d.breaker.RetryPending(t.Context())
	require.NoError(t, err)
	assert.Equal(t, 2, res.Republished, "the records behind the poison one go out in the same round")
	assert.Equal(t, 1, res.Failed)
	assert.Equal(t, []string{`"a"`, `"b"`}, d.deliveredPayloads())
	recs := peek(t, d.store)
	require.Len(t, recs, 1)
	assert.Equal(t, 1, recs[0].Attempts, "a refused delivery is an attempt")
	poisonID := recs[0].ID

	d.append(t, `"c"`)
	_, err = d.breaker.RetryPending(t.Context())
	require.NoError(t, err)
	recs = peek(t, d.store)
	require.Len(t, recs, 1)
	assert.Equal(t, poisonID, recs[0].ID, "kept in place under its own ID, not spilled again")
	assert.Equal(t, 2, recs[0].Attempts)

	res, err = d.breaker.RetryPending(t.Context())
	require.NoError(t, err)
	assert.Equal(t, 1, res.DeadLettered, "the third attempt reaches MaxAttempts")
	assert.Empty(t, peek(t, d.store))
	assert.Equal(t, []string{`"a"`, `"b"`, `"c"`}, d.deliveredPayloads())
	assert.Equal(t, int64(7), d.store.Stats().Appended, "4, and a re-spill of the poison record per attempt, each a copy discarded")
	assert.Equal(t, syncbreaker.StateClosed, d.breaker.State())
}

// A republished record the handler spills again because the circuit is
// open stays where it was, with its ID and no attempt counted, and the
// round stops there.
func TestRespillWhileOpenKeepsTheRecordInPlace(t *testing.T) {
	d := newLoopDaemon(t, syncbreaker.StoreConfig{}, syncbreaker.Config{FailureThreshold: 1}, nil)
	d.append(t, `"a"`, `"b"`, `"c"`)
	before := peek(t, d.store)

	var opened bool
	d.server = func(p []byte) error {
		if string(p) == `"b"` && !opened {
			opened = true
			return errRejected // opens the circuit: threshold 1
		}
		return nil
	}
	res, err := d.breaker.RetryPending(t.Context())
	require.ErrorIs(t, err, syncbreaker.ErrOpen)
	assert.Equal(t, 1, res.Republished)
	assert.Equal(t, syncbreaker.StateOpen, d.breaker.State())
	after := peek(t, d.store)
	require.Len(t, after, 2)
	assert.Equal(t, before[1:], after, "b kept its ID, place and attempt count; c was not touched")
	assert.Equal(t, uint64(1), d.breaker.Stats().Spilled, "the handler's re-spill, a copy discarded at the next replay")
}

// A refusal marked Permanent goes to the dead letters at once, whatever
// MaxAttempts says. Here the router's middleware settles it.
func TestPermanentRefusalDeadLettersAtOnce(t *testing.T) {
	store, err := syncbreaker.OpenJSONLStore(filepath.Join(t.TempDir(), "p.jsonl"), syncbreaker.StoreConfig{})
	require.NoError(t, err)
	defer store.Close()
	bus := newGoChannel(t, gochannel.Config{})
	msgs, err := bus.Subscribe(t.Context(), testTopic)
	require.NoError(t, err)
	b := newBreaker(t, syncbreaker.Config{}, store,
		newTestRepublisher(t, bus, syncbreaker.RepublisherConfig{Rate: 10_000, SettleTimeout: time.Minute}))
	handler := b.Middleware(func(msg *message.Message) ([]*message.Message, error) {
		if string(msg.Payload) == `"malformed"` {
			return nil, syncbreaker.Permanent(errors.New("server answered 422"))
		}
		return nil, nil
	})
	go func() {
		for msg := range msgs {
			if _, err := handler(msg); err != nil {
				msg.Nack()
				continue
			}
			msg.Ack()
		}
	}()
	for _, p := range []string{`"ok"`, `"malformed"`, `"ok too"`} {
		require.NoError(t, store.Append(t.Context(), []byte(p)))
	}
	res, err := b.RetryPending(t.Context())
	require.NoError(t, err)
	assert.Equal(t, 2, res.Republished)
	assert.Equal(t, 1, res.DeadLettered)
	assert.Equal(t, int64(1), store.Stats().DeadLettered)
	assert.Zero(t, store.Stats().PendingRecords)
}

// When the circuit opens while a record is being handled, the round stops
// before the next record, but the record in flight is still awaited: its
// handler's verdict counts, and it is neither abandoned nor duplicated.
func TestCircuitOpeningStopsTheRoundBetweenRecords(t *testing.T) {
	d := newLoopDaemon(t, syncbreaker.StoreConfig{}, syncbreaker.Config{FailureThreshold: 1}, nil)
	d.append(t, `"a"`, `"b"`, `"c"`)
	d.server = func(p []byte) error {
		if string(p) == `"a"` {
			d.breaker.RecordFailure() // another call failed meanwhile: the circuit opens
			if d.breaker.State() != syncbreaker.StateOpen {
				return errors.New("the circuit did not open")
			}
		}
		return nil // a itself went through
	}
	res, err := d.breaker.RetryPending(t.Context())
	require.ErrorIs(t, err, syncbreaker.ErrOpen)
	assert.Equal(t, 1, res.Republished, "a was handled: removed, not kept for a duplicate")
	assert.Equal(t, []string{`"a"`}, d.deliveredPayloads())
	assert.Equal(t, []string{`"b"`, `"c"`}, payloadsOf(peek(t, d.store)))
}

// A message nobody settles times out: the record stays with no attempt
// counted, the round stops, timeouts are counted, and several in a row are
// logged as a wiring problem.
func TestSettleTimeoutsAreNotAttempts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := seeded(t, "a", "b")
		bus := newGoChannel(t, gochannel.Config{})
		msgs, err := bus.Subscribe(t.Context(), testTopic)
		require.NoError(t, err)
		go func() {
			for msg := range msgs {
				msg.Ack() // a daemon that forgot to settle
			}
		}()
		var logs bytes.Buffer
		var logMu sync.Mutex
		b := newBreaker(t, syncbreaker.Config{Logger: slog.New(slog.NewTextHandler(&lockedWriter{w: &logs, mu: &logMu}, nil))}, store,
			newTestRepublisher(t, bus, syncbreaker.RepublisherConfig{SettleTimeout: 10 * time.Second}))

		for round := 1; round <= 3; round++ {
			res, err := b.RetryPending(t.Context())
			require.ErrorIs(t, err, syncbreaker.ErrSettleTimeout)
			assert.Zero(t, res.Republished)
			assert.Equal(t, uint64(round), b.Stats().SettleTimeouts)
		}
		recs := store.records()
		require.Len(t, recs, 2)
		assert.Zero(t, recs[0].Attempts, "a timeout is not an attempt")
		assert.Zero(t, recs[1].Attempts, "the round stopped before b")
		logMu.Lock()
		defer logMu.Unlock()
		assert.Equal(t, 1, strings.Count(logs.String(), "not being settled"), logs.String())
		assert.Contains(t, logs.String(), "timeouts_in_a_row=3")
	})
}

type lockedWriter struct {
	w  *bytes.Buffer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// Replay hands each callback a payload it owns: one that keeps every
// payload (or hands it to an asynchronous publisher) still has the right
// bytes after the replay, inline JSON and base64 alike.
func TestReplayCallbackOwnsThePayload(t *testing.T) {
	store, err := syncbreaker.OpenJSONLStore(filepath.Join(t.TempDir(), "p.jsonl"), syncbreaker.StoreConfig{Sync: syncbreaker.SyncNever})
	require.NoError(t, err)
	defer store.Close()
	var want []string
	for i := range 1000 {
		p := fmt.Sprintf(`{"cmd":"echo %d"}`, i)
		if i%3 == 0 {
			p = fmt.Sprintf("not json %d\n", i)
		}
		want = append(want, p)
		require.NoError(t, store.Append(t.Context(), []byte(p)))
	}
	var kept [][]byte
	_, err = store.Replay(t.Context(), func(_ context.Context, r syncbreaker.Record) error {
		kept = append(kept, r.Payload)
		return nil
	})
	require.NoError(t, err)
	require.Len(t, kept, len(want))
	wrong := 0
	for i := range want {
		if string(kept[i]) != want[i] {
			wrong++
		}
	}
	assert.Zero(t, wrong, "payloads changed after their callback returned")
}
