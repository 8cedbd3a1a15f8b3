package syncbreaker

import (
	"context"

	"github.com/ThreeDotsLabs/watermill/message"
)

// Middleware wraps a watermill handler with the breaker, as Execute wraps a
// send function: msg.Payload is the payload and msg.Context() the context.
// While the circuit is open the handler is not called, the payload is
// spilled and (nil, nil) is returned, so the message is acked instead of
// being nacked into a redelivery loop. A handler failure that leaves the
// circuit open is spilled the same way and its produced messages are
// dropped. Any other handler error is returned, so the router nacks the
// message and it stays the publisher's to redeliver.
//
// A spilled message becomes a new record with a new ID, not its own UUID:
// a broker that drops duplicate UUIDs (JetStream's Nats-Msg-Id) would
// otherwise discard the republish as a repeat of the original message.
//
// Use it with router.AddMiddleware or on a single handler.
func (b *Breaker) Middleware(h message.HandlerFunc) message.HandlerFunc {
	return func(msg *message.Message) ([]*message.Message, error) {
		var (
			produced []*message.Message
			called   bool
			sendErr  error
		)
		err := b.Execute(msg.Context(), msg.Payload, func(context.Context) error {
			called = true
			produced, sendErr = h(msg)
			return sendErr
		})
		if err != nil {
			return nil, err
		}
		if !called || sendErr != nil { // spilled
			return nil, nil
		}
		return produced, nil
	}
}
