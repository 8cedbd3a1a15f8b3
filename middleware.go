package syncbreaker

import (
	"errors"

	"github.com/ThreeDotsLabs/watermill/message"
)

// Middleware wraps a watermill handler with the breaker, as Execute wraps a
// send function: msg.Payload is the payload and msg.Context() the context.
//
// Fresh messages: while the circuit is open the handler is not called, the
// payload is spilled and (nil, nil) is returned, so the message is acked
// instead of being nacked into a redelivery loop. A handler failure that
// leaves the circuit open is spilled the same way and its produced
// messages are dropped. Any other handler error is returned, so the router
// nacks the message and it stays the publisher's to redeliver.
//
// Republished messages the Breaker's republisher waits for (see Settle):
// the handler's outcome settles the record, and the message is always
// acked. Success removes the record; a failure, or the circuit being open,
// leaves it pending in its place under its own ID (a Permanent failure
// dead-letters it). Nothing is spilled again and nothing is nacked, which
// on a default GoChannel would redeliver at once, in a loop. A republished
// message nobody waits for any more (after a timeout or a restart) is
// handled like a fresh one.
//
// A spilled message becomes a new record with a new ID, not its own UUID:
// a broker that drops duplicate UUIDs (JetStream's Nats-Msg-Id) would
// otherwise discard the republish as a repeat of the original message.
//
// Use it with router.AddMiddleware or on a single handler.
func (b *Breaker) Middleware(h message.HandlerFunc) message.HandlerFunc {
	return func(msg *message.Message) ([]*message.Message, error) {
		ctx := msg.Context()
		w := b.word.Load()
		if stateOf(w) == StateOpen {
			if b.Settle(msg, ErrOpen) {
				return nil, nil // stays pending where it is
			}
			return nil, b.SaveForRetry(ctx, msg.Payload)
		}
		produced, err := h(msg)
		spill := b.record(ctx, w, err)
		if b.Settle(msg, err) {
			if err != nil {
				return nil, nil // the record stays pending (or is dead-lettered)
			}
			return produced, nil
		}
		switch {
		case err == nil:
			return produced, nil
		case !spill:
			return nil, err
		}
		if serr := b.SaveForRetry(ctx, msg.Payload); serr != nil {
			return nil, errors.Join(err, serr)
		}
		return nil, nil
	}
}
