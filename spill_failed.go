package syncbreaker

import (
	"context"
	"errors"
	"log/slog"

	"github.com/ThreeDotsLabs/watermill/message"
)

// Failed sends before the circuit opens. A handler that records a failure
// and returns the error (as the first user's does) leaves its message to
// the message queue, which redelivers it a few times and then drops it:
// the first FailureThreshold messages of every outage would be lost. So
// by default Settle and Middleware spill a fresh message whose handler
// failed with a server failure, and the daemon acks it; it goes out with
// the next replay, after newer messages. Only the payload is spilled.

// SpillMode says which paths spill a payload whose send failed while the
// circuit stays closed (a failure that opens it is spilled on every path).
type SpillMode int

const (
	// SpillOnSettle (the default): Breaker.Settle and Middleware spill a
	// fresh message whose handler failed with a server failure, and
	// report it handled; Execute returns the error, and its caller keeps
	// the payload.
	SpillOnSettle SpillMode = iota
	// SpillAlways: Execute spills such a payload too, and returns nil.
	SpillAlways
	// SpillWhenOpen: only failures that leave the circuit open are
	// spilled; Settle never spills, and a failed send before the circuit
	// opens is the caller's to keep (the behaviour before SpillOnSettle).
	SpillWhenOpen
)

// DefaultMaxAttempts is the attempt limit a Breaker sets when it spills
// failed sends (see Config.MaxAttempts).
const DefaultMaxAttempts = 10

// isServerFailure reports whether err, a send's failure, says the server
// is failing (see countsAsFailure) and is not the library's own store
// error: a handler whose SaveForRetry failed returns that error, and
// spilling the payload again would only fail again.
func (b *Breaker) isServerFailure(ctx context.Context, err error) bool {
	switch {
	case errors.Is(err, ErrStoreFull), errors.Is(err, ErrPayloadTooLarge),
		errors.Is(err, ErrStoreClosed), errors.Is(err, ErrStoreLocked):
		return false
	}
	return b.countsAsFailure(ctx, err)
}

// spillsFresh reports whether a fresh message whose handler failed with
// err is spilled by Settle or Middleware: the server said when to come
// back, or the spill mode says so and err is a server failure. The
// handler has recorded the failure already: nothing is counted here.
func (b *Breaker) spillsFresh(ctx context.Context, err error) bool {
	if _, ok := RetryAfterDelay(err); ok && !IsPermanent(err) {
		return true
	}
	return b.spillMode != SpillWhenOpen && b.isServerFailure(ctx, err)
}

// spillMessage stores msg's payload as a new record, with msg's UUID when
// the store keeps one (MessageAppender). The message's context may be
// ending (the daemon stopping): the payload is still the daemon's to
// keep, so the append does not depend on it.
func (b *Breaker) spillMessage(msg *message.Message) error {
	ctx := context.WithoutCancel(msg.Context())
	var err error
	if b.msgAppender != nil {
		_, err = b.msgAppender.AppendMessage(ctx, msg.Payload, msg.UUID)
	} else {
		err = b.store.Append(ctx, msg.Payload)
	}
	if err != nil {
		return b.spillError(ctx, msg.Payload, err)
	}
	b.spilled.Add(1)
	b.noteClosedSpill()
	return nil
}

// appendSpill appends payload to the store and counts the spill, or the
// failure.
func (b *Breaker) appendSpill(ctx context.Context, payload []byte) error {
	if err := b.store.Append(ctx, payload); err != nil {
		return b.spillError(ctx, payload, err)
	}
	b.spilled.Add(1)
	return nil
}

func (b *Breaker) spillError(ctx context.Context, payload []byte, err error) error {
	b.spillErrors.Add(1)
	b.log.LogAttrs(ctx, slog.LevelError, "syncbreaker: spill failed", slog.Int("bytes", len(payload)))
	return wrapErr(err, "spill %d bytes", len(payload))
}
