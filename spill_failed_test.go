package syncbreaker_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"testing/synctest"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/gochannel"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/syncbreaker/syncbreaker"
)

// The first user's handler records a failure and returns the error; the
// README's loop line then acks what Settle took care of. A fresh message
// whose send failed with a server failure is spilled, once, and counted
// once.
func TestSettleSpillsAFreshMessagesServerFailure(t *testing.T) {
	ctxDone, cancel := context.WithCancel(context.Background())
	cancel()
	for _, tt := range []struct {
		name      string
		cfg       syncbreaker.Config
		ctx       context.Context
		err       error
		appendErr error
		want      bool
		spilled   []string
	}{
		{name: "server failure", err: errServer, want: true, spilled: []string{"p"}},
		{name: "wrapped", err: fmt.Errorf("post: %w", errServer), want: true, spilled: []string{"p"}},
		{name: "success", err: nil, want: false},
		{name: "permanent (a 4xx the adapter marks)", err: syncbreaker.Permanent(errClient), want: false},
		{name: "IsFailure rejects it", cfg: syncbreaker.Config{IsFailure: func(error) bool { return false }}, err: errServer, want: false},
		{name: "its own context ended", ctx: ctxDone, err: context.Canceled, want: false},
		{name: "the store was full when the handler spilled", err: syncbreaker.ErrStoreFull, want: false},
		{name: "payload too large", err: fmt.Errorf("spill: %w", syncbreaker.ErrPayloadTooLarge), want: false},
		{name: "SpillWhenOpen", cfg: syncbreaker.Config{SpillFailures: syncbreaker.SpillWhenOpen}, err: errServer, want: false},
		{name: "spill fails: nacked", err: errServer, appendErr: errDisk, want: false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			store := &memStore{appendErr: tt.appendErr}
			b := newBreaker(t, tt.cfg, store, nil)
			msg := message.NewMessage("fresh", []byte("p"))
			if tt.ctx != nil {
				msg.SetContext(tt.ctx)
			}
			if tt.err != nil {
				b.RecordFailure() // the handler did
			}
			assert.Equal(t, tt.want, b.Settle(msg, tt.err))
			assert.Equal(t, tt.spilled, store.payloads())
			st := b.Stats()
			assert.Equal(t, uint64(len(tt.spilled)), st.Spilled)
			if tt.appendErr != nil {
				assert.Equal(t, uint64(1), st.SpillErrors)
			}
			if tt.err != nil {
				assert.Equal(t, 1, st.ConsecutiveFailures, "counted once, by the handler")
			}
		})
	}
}

// Execute keeps returning a failed send's error by default; SpillAlways
// spills it.
func TestExecuteSpillsFailuresOnlyWhenAsked(t *testing.T) {
	send := func(context.Context) error { return errServer }
	store := &memStore{}
	b := newBreaker(t, syncbreaker.Config{}, store, nil)
	assert.ErrorIs(t, b.Execute(t.Context(), []byte("kept by the caller"), send), errServer)
	assert.Empty(t, store.payloads())

	store = &memStore{}
	b = newBreaker(t, syncbreaker.Config{SpillFailures: syncbreaker.SpillAlways}, store, nil)
	assert.NoError(t, b.Execute(t.Context(), []byte("spilled"), send))
	assert.Equal(t, []string{"spilled"}, store.payloads())
	assert.Equal(t, 1, b.Stats().ConsecutiveFailures)
}

// With failed sends spilled, a payload the server always rejects reaches
// the dead letters after Config.MaxAttempts (10 by default), never
// deleted and never republished forever.
func TestMaxAttemptsDeadLettersAPoisonRecord(t *testing.T) {
	for _, tt := range []struct {
		name string
		cfg  syncbreaker.Config
		want int // rounds until dead-lettered; 0: never within 15
	}{
		{"default", syncbreaker.Config{}, 10},
		{"configured", syncbreaker.Config{MaxAttempts: 3}, 3},
		{"SpillWhenOpen has no limit", syncbreaker.Config{SpillFailures: syncbreaker.SpillWhenOpen}, 0},
		{"no limit", syncbreaker.Config{MaxAttempts: -1}, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			store := seeded(t, "poison")
			rep := &refusingRepublisher{err: errors.Join(syncbreaker.ErrNotHandled, errClient)}
			b := newBreaker(t, tt.cfg, store, rep)
			rounds := 0
			for rounds < 15 && len(store.dead) == 0 {
				_, err := b.RetryPending(t.Context())
				require.NoError(t, err)
				rounds++
			}
			if tt.want == 0 {
				assert.Empty(t, store.dead)
				assert.Equal(t, 15, store.records()[0].Attempts)
				return
			}
			assert.Equal(t, tt.want, rounds)
			require.Len(t, store.dead, 1)
			assert.Equal(t, tt.want, store.dead[0].Attempts)
		})
	}
}

// refusingRepublisher fails every record with err.
type refusingRepublisher struct{ err error }

func (r *refusingRepublisher) Republish(context.Context, syncbreaker.Record) error { return r.err }

// A payload spilled while the circuit stays closed goes out shortly after
// the server answers again (a success after the spill arms a retry
// retrySoonDelay later), not at the next hourly tick; a record that fails
// again in that round does not re-arm it.
func TestSpillWhileClosedIsRetriedSoonAfterASuccess(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := &memStore{}
		rep := &recordingRepublisher{}
		b := newBreaker(t, syncbreaker.Config{}, store, rep)
		stop := startRun(t, b)
		defer stop()

		b.RecordSuccess() // no spill yet: nothing is armed
		time.Sleep(time.Minute)
		synctest.Wait()
		assert.Zero(t, b.Stats().Replays)

		b.RecordFailure()
		require.True(t, b.Settle(message.NewMessage("fresh", []byte("p")), errServer))
		time.Sleep(time.Minute)
		synctest.Wait()
		assert.Zero(t, b.Stats().Replays, "the server has not answered yet")

		start := time.Now()
		b.RecordSuccess()
		time.Sleep(5*time.Second - time.Nanosecond)
		synctest.Wait()
		assert.Empty(t, rep.republished(), "a debounce first")
		time.Sleep(time.Nanosecond)
		synctest.Wait()
		assert.Len(t, rep.republished(), 1, "republished %v after the success", time.Since(start))
		assert.Empty(t, store.payloads())

		// The record failing again in its round is not a spill: the next
		// success arms nothing.
		rep.mu.Lock()
		rep.err = errors.Join(syncbreaker.ErrNotHandled, errServer)
		rep.mu.Unlock()
		b.RecordFailure()
		require.True(t, b.Settle(message.NewMessage("fresh-2", []byte("q")), errServer))
		b.RecordSuccess()
		time.Sleep(5 * time.Second)
		synctest.Wait()
		replays := b.Stats().Replays
		b.RecordFailure() // the handler's failure of the republished record
		b.RecordSuccess()
		time.Sleep(10 * time.Minute)
		synctest.Wait()
		assert.Equal(t, replays, b.Stats().Replays, "not re-armed by the record that failed again")
	})
}

// An error IsFailure rejects is not Permanent: not counted, not spilled,
// and a republished record refused with it counts an attempt (MaxAttempts
// decides) instead of being dead-lettered at once, as Permanent is.
func TestIsFailureFalseIsNotPermanent(t *testing.T) {
	errRateLimited := errors.New("server answered 429")
	for _, tt := range []struct {
		name     string
		err      error
		attempts int
		dead     int
	}{
		{"rejected by IsFailure", errRateLimited, 1, 0},
		{"permanent", syncbreaker.Permanent(errClient), 0, 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rig := newCapRig(t, syncbreaker.RepublisherConfig{})
			b := newBreaker(t, syncbreaker.Config{IsFailure: func(err error) bool { return !errors.Is(err, errRateLimited) }}, rig.store, rig.rep)
			rig.seed(t, `"a"`)
			handler := b.Middleware(func(*message.Message) ([]*message.Message, error) { return nil, tt.err })
			rig.loop(t, b, 1, func(msg *message.Message) error { _, err := handler(msg); return err })
			res, err := b.RetryPending(t.Context())
			require.NoError(t, err)
			assert.Equal(t, tt.dead, res.DeadLettered)
			if tt.attempts > 0 {
				recs := peek(t, rig.store)
				require.Len(t, recs, 1)
				assert.Equal(t, tt.attempts, recs[0].Attempts)
			}
			assert.Zero(t, b.Stats().ConsecutiveFailures, "not counted")
			assert.Zero(t, b.Stats().Spilled, "not spilled")
		})
	}
}

// A fresh message's own UUID is kept with its spilled record, across a
// reopen, and sent as metadata when it is republished, while the
// republished message's UUID stays the record ID.
func TestSpilledFreshMessageKeepsItsUUID(t *testing.T) {
	path := filepath.Join(t.TempDir(), "p.jsonl")
	store, err := syncbreaker.OpenJSONLStore(path, syncbreaker.StoreConfig{})
	require.NoError(t, err)
	b := newBreaker(t, syncbreaker.Config{}, store, &recordingRepublisher{})
	msg := message.NewMessage("0190f3a4-7c1e-7d2b-9a55-1b2c3d4e5f60", []byte(`{"cmd":"ls"}`))
	require.True(t, b.Settle(msg, errServer))
	require.NoError(t, store.Close())

	store, err = syncbreaker.OpenJSONLStore(path, syncbreaker.StoreConfig{})
	require.NoError(t, err)
	defer store.Close()
	recs := peek(t, store)
	require.Len(t, recs, 1)
	assert.Equal(t, msg.UUID, recs[0].MessageID, "kept across a reopen")
	assert.NotEqual(t, msg.UUID, recs[0].ID)

	bus := newGoChannel(t, gochannel.Config{})
	msgs, err := bus.Subscribe(t.Context(), testTopic)
	require.NoError(t, err)
	rep := newTestRepublisher(t, bus, syncbreaker.RepublisherConfig{})
	require.NoError(t, rep.Republish(t.Context(), recs[0]))
	got := <-msgs
	got.Ack()
	assert.Equal(t, recs[0].ID, got.UUID, "the republished message's UUID is the record ID")
	assert.Equal(t, msg.UUID, got.Metadata.Get(syncbreaker.MetadataMessageUUID), "and the original UUID travels with it")
}
