package syncbreaker

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The first user's daemon, as it is really written (see DESIGN.md), in the
// drain-loss harness: its handler decodes each message into its own
// envelope, spills a re-marshalled copy with msg.Context() while IsOpen,
// and on a failed post calls RecordFailure and returns the error without
// spilling; its loop is the README's line; its consumer gives a message
// up after 3 redeliveries; its server has no idempotency key; its main
// stops the bus first and then runs one Stop (cancel, wait, close the
// store). Among the fresh traffic: messages of another type, messages that
// do not decode, and payloads the server refuses with a 4xx, which its
// adapter marks Permanent.

// wiringFirstUser is the first user's daemon as written.
const wiringFirstUser lossWiring = "first-user"

// firstUserEnvelope is the first user's message shape.
type firstUserEnvelope struct {
	Type    string          `json:"type"`
	Payload json.RawMessage `json:"payload"`
}

// firstUserFresh is fresh message seq as the first user's socket server
// publishes it: a sync envelope, now and then another type or bytes that
// do not decode.
func firstUserFresh(seq int) []byte {
	switch {
	case seq%50 == 7:
		return []byte(`{"type":"heartbeat"}`)
	case seq%70 == 11:
		return fmt.Appendf(nil, "noise: not json %d", seq)
	}
	return firstUserEnvelopeOf(lossPayload(seq))
}

func firstUserEnvelopeOf(payload []byte) []byte {
	return append(append([]byte(`{"type":"sync","payload":`), payload...), '}')
}

// isLossNoise reports a message that does not decode (firstUserFresh).
func isLossNoise(p []byte) bool { return bytes.HasPrefix(p, []byte("noise:")) }

// refuses4xx reports a fresh payload the server refuses for good.
func refuses4xx(seq int) bool { return seq >= lossFreshSpan && seq%89 == 5 }

func (s *lossServer) refuses(seq int) bool { return s.firstUser && refuses4xx(seq) }

// firstUserLoop is the first user's consumer: its handler and the
// README's loop line, and a give-up after 3 redeliveries.
func (d *lossDaemon) firstUserLoop(messages <-chan *message.Message) {
	defer close(d.consumed)
	breaker, server, sink := d.breaker, d.cfg.server, d.cfg.sink
	handle := func(msg *message.Message) error {
		var env firstUserEnvelope
		if err := json.Unmarshal(msg.Payload, &env); err != nil {
			return fmt.Errorf("decode sync message: %w", err)
		}
		if env.Type != "sync" {
			return nil
		}
		if breaker.IsOpen() {
			copied, err := json.Marshal(env) // not the bytes it received
			if err != nil {
				return err
			}
			return breaker.SaveForRetry(msg.Context(), copied)
		}
		post := message.NewMessage(msg.UUID, message.Payload(env.Payload))
		post.Metadata = msg.Metadata
		if err := server.send(post); err != nil {
			breaker.RecordFailure()
			return err
		}
		breaker.RecordSuccess()
		return nil
	}
	freshSeq := func(msg *message.Message) (int, bool) {
		if msg.Metadata.Get(MetadataRepublished) == "true" {
			return 0, false
		}
		return lossSeq(msg.Payload)
	}
	redelivered := map[string]int{}
	for msg := range messages {
		err := handle(msg)
		if breaker.Settle(msg, err) || err == nil {
			msg.Ack()
			delete(redelivered, msg.UUID)
			if seq, ok := freshSeq(msg); ok {
				sink.acked(seq)
			}
			continue
		}
		if redelivered[msg.UUID] == 3 {
			msg.Ack() // "Max retries reached, dropping message"
			delete(redelivered, msg.UUID)
			if seq, ok := freshSeq(msg); ok {
				sink.gaveUp(seq)
			}
			continue
		}
		redelivered[msg.UUID]++
		msg.Nack()
	}
}

// stopAsTheFirstUser stops in the first user's order: the bus first
// (pubsub.Close()), then one Stop: cancel the breaker, wait for it and for
// the processor loop (its channel closed with the bus, and it returns once
// the message in hand is settled), close the store.
func (d *lossDaemon) stopAsTheFirstUser() (Stats, error) {
	err := d.bus.Close()
	d.stopBreaker()
	d.breakerWG.Wait()
	<-d.consumed
	err = errors.Join(err, d.stopConsumer())
	stats := d.breaker.Stats()
	err = errors.Join(err, d.store.Close())
	d.endLife()
	return stats, err
}

// TestDrainLossFirstUser runs the first user's daemon as written through
// an outage (200, then 503, then 200) with fresh traffic, two orderly stops
// in its own order in the middle of the drain, and a last life that drains
// the rest. Nothing it acked or spilled may be lost; a fresh message it
// gave up on is lost unless the server refused it with a 4xx.
func TestDrainLossFirstUser(t *testing.T) {
	seeded := 600
	if testing.Short() {
		seeded = 200
	}
	sc := newLossScenario(t, wiringFirstUser, seeded)
	for i := range 2 {
		server := sc.server()
		d := sc.start(server, true)
		sc.waitDelivered(d, (i+1)*seeded/4)
		server.down.Store(true) // an outage: the first messages fail before the circuit opens
		require.NoError(t, lossWaitFor(lossDeadline, "the circuit to open", func() bool { return d.breaker.Stats().Opens > 0 }))
		time.Sleep(3 * lossResetInterval)
		server.down.Store(false)
		sc.waitDelivered(d, (i+2)*seeded/4) // the drain goes on, then the stop lands in it
		st := sc.stop(d)
		t.Logf("life %d: %d opens, %d spilled (%d re-spilled in place), %d republished", i+1, st.Opens, st.Spilled, st.Respilled, st.Republished)
	}
	sc.drainRest()
	l := sc.ledger
	l.mu.Lock()
	gaveUp := 0
	for seq := range l.gaveUpSeqs {
		if !refuses4xx(seq) {
			gaveUp++
		}
	}
	acked := len(l.ackedSeqs)
	l.mu.Unlock()
	assert.Zero(t, gaveUp, "no history given up on but what the server refused for good")
	assert.Positive(t, acked)
	// A stop repeats at most the record in flight (MaxInFlight 1) and
	// what a settle timeout left; the ledger counts the rest.
	sc.ledger.check(t, sc.path, 2+int(sc.settleTimeouts))
}
