package syncbreaker

import (
	"context"
	"errors"
	"fmt"

	"github.com/ThreeDotsLabs/watermill/message"
)

// errProbeLimit settles a republished message that found the circuit
// half-open with its probes all admitted: handled as if open.
var errProbeLimit = fmt.Errorf("%w: half-open probes all admitted", ErrOpen)

// Middleware wraps a watermill handler with the breaker, as Execute wraps a
// send function: msg.Payload is the payload and msg.Context() the context.
// Each message is one send: it takes at most one half-open admission.
//
// Fresh messages: while the circuit is open, or half-open with its probes
// all admitted (see Config.HalfOpenMaxProbes), the handler is not called,
// the payload is spilled and (nil, nil) is returned, so the message is
// acked instead of being nacked into a redelivery loop. A handler failure
// that is a server failure (see Breaker.Settle; Config.SpillFailures) is
// spilled the same way and its produced messages are dropped, and one
// marked with RetryAfter opens the circuit first. Any other handler error
// (Permanent, rejected by Config.IsFailure, the message context ending, a
// failed spill) is returned, so the router nacks the message and it stays
// the publisher's to redeliver. A half-open
// probe whose handler returns no outcome (a Permanent error, an error
// Config.IsFailure rejects, the message context ending) or panics gives
// its admission back; the panic goes on.
//
// Republished messages the Breaker's republisher waits for (see Settle):
// the handler's outcome settles the record, and the message is always
// acked. Success removes the record; a failure, the circuit being open or
// the half-open probes being all admitted leave it pending in its place
// under its own ID, with no attempt counted for the last two (a Permanent
// failure dead-letters it). Nothing is spilled again and nothing is
// nacked, which on a default GoChannel would redeliver at once, in a loop.
// A republished message nobody waits for any more (after a timeout or a
// restart) is handled like a fresh one.
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
		if w&stateMask != 0 { // not closed
			return b.handleGuarded(ctx, h, msg, w)
		}
		produced, err := h(msg)
		return b.handled(ctx, msg, w, produced, err)
	}
}

// handleGuarded is Middleware for a message that found the circuit open or
// half-open in the word w. Refused (open, or no admission free), msg is
// settled as not handled when the republisher waits for it (the record
// stays pending in its place), else its payload is spilled. Admitted, h
// runs as in Middleware; a probe whose handler panics gives its admission
// back.
func (b *Breaker) handleGuarded(ctx context.Context, h message.HandlerFunc, msg *message.Message, w uint64) ([]*message.Message, error) {
	w, ok := b.admit(w)
	if !ok {
		settleErr := ErrOpen
		if stateOf(w) == StateHalfOpen {
			settleErr = errProbeLimit
		}
		if b.settleRepublished(msg, settleErr) {
			return nil, nil // stays pending where it is, not an attempt
		}
		return nil, b.spillMessage(msg)
	}
	if stateOf(w) != StateHalfOpen { // closed meanwhile
		produced, err := h(msg)
		return b.handled(ctx, msg, w, produced, err)
	}
	ended := false
	defer func() {
		if !ended { // the handler panicked (or called runtime.Goexit): no outcome
			b.release(w)
		}
	}()
	produced, err := h(msg)
	ended = true
	return b.handled(ctx, msg, w, produced, err)
}

// handled records the outcome err of h for msg, which ran under the word w
// with ctx its context, settles msg when the republisher waits for it, and
// spills its payload when the failure left the circuit open.
func (b *Breaker) handled(ctx context.Context, msg *message.Message, w uint64, produced []*message.Message, err error) ([]*message.Message, error) {
	spill := b.record(ctx, w, err) // a RetryAfter has opened the circuit by now
	if b.settleRepublished(msg, err) {
		if err != nil {
			return nil, nil // the record stays pending (or is dead-lettered)
		}
		return produced, nil
	}
	switch {
	case err == nil:
		return produced, nil
	case !spill && !b.spillsFresh(ctx, err):
		return nil, err
	}
	if serr := b.spillMessage(msg); serr != nil {
		return nil, errors.Join(err, serr)
	}
	return nil, nil
}
