package syncbreaker

import (
	"context"
	"strconv"
	"time"

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
// A spilled message keeps its identity when the store can keep it (as
// *JSONLStore does): the record ID is the message UUID, and a message that
// was itself republished keeps its enqueue time and counts one more
// attempt. So a message delivered and spilled twice is republished under
// one UUID, and consumers drop the repeat.
//
// Use it with router.AddMiddleware or on a single handler.
func (b *Breaker) Middleware(h message.HandlerFunc) message.HandlerFunc {
	return func(msg *message.Message) ([]*message.Message, error) {
		var (
			produced []*message.Message
			called   bool
			sendErr  error
		)
		err := b.execute(msg.Context(), msg.Payload, msg, func(context.Context) error {
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

// recordOf is the record a message is spilled as: its UUID and payload, and
// for a message a TopicRepublisher published, the enqueue time and attempts
// it carries.
func recordOf(msg *message.Message) Record {
	rec := Record{ID: msg.UUID, Payload: msg.Payload}
	if msg.Metadata.Get(MetadataRepublished) != "true" {
		return rec
	}
	if t, err := time.Parse(time.RFC3339Nano, msg.Metadata.Get(MetadataEnqueuedAt)); err == nil {
		rec.EnqueuedAt = t
	}
	if n, err := strconv.Atoi(msg.Metadata.Get(MetadataAttempts)); err == nil && n >= 0 {
		rec.Attempts = n + 1 // it came back and failed again
	}
	return rec
}
