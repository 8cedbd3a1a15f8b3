package syncbreaker

import "github.com/ThreeDotsLabs/watermill/message"

// Settler is implemented by a Republisher that can wait until the daemon's
// handler is done with a republished message, as TopicRepublisher does
// with SettleTimeout. A Breaker whose republisher is a Settler settles
// republished messages in Middleware, and forwards Breaker.Settle to it; a
// decorator around a TopicRepublisher keeps that by forwarding Settle.
type Settler interface {
	// Settle reports that the handler is done with msg (err nil: handled)
	// and whether the republisher was waiting for it. See
	// TopicRepublisher.Settle.
	Settle(msg *message.Message, err error) bool
}

var _ Settler = (*TopicRepublisher)(nil)

// Settle reports that the daemon's handler is done with msg, for a
// processor loop that has no router (Middleware does this itself), and
// returns true when the breaker has taken care of msg: ack it.
//
// A republished message (the Breaker's republisher waits for it, or its
// Republish gave up): nil removes the record from the store, an error
// leaves it pending in its place (a Permanent one dead-letters it), and a
// handler that spilled it again with msg.Context() leaves it pending with
// the bytes it spilled (see SaveForRetry). A message handled after its
// Republish gave up counts too: a Tombstoner store then removes the record
// at the next round instead of delivering it again (see late_settle.go).
//
// A fresh message whose handler failed with a server failure (not
// Permanent, not its own context ending, accepted by Config.IsFailure, and
// not one of the store's own errors such as ErrStoreFull): its payload is
// spilled, so Settle may write to disk, and true is returned (see
// Config.SpillFailures; the handler has recorded the failure, nothing is
// counted twice). Only the payload is spilled, as a new record under a new
// ID, and it is sent after newer messages. A failed spill returns false
// (the daemon nacks msg and keeps it) and counts in SpillErrors. An error
// marked with RetryAfter opens the circuit at once, for the server's delay,
// before anything else; one marked Overloaded is recorded as an overload
// (see Overloaded: the handler records nothing for it). Any other message returns false: ack or nack it
// as usual.
//
//	for msg := range messages {
//		err := handle(msg) // IsOpen, SaveForRetry, RecordFailure, RecordSuccess
//		if breaker.Settle(msg, err) || err == nil {
//			msg.Ack()
//		} else {
//			msg.Nack()
//		}
//	}
//
// For a message that succeeded and was not republished it never blocks and
// costs one metadata lookup.
func (b *Breaker) Settle(msg *message.Message, err error) bool {
	if msg == nil {
		return false
	}
	if d, ok := RetryAfterDelay(err); ok && !IsPermanent(err) {
		b.trip(b.word.Load(), false, d) // open before the record's Republish returns
	} else if isOverload(err) {
		b.overload(b.word.Load(), false) // the handler records nothing for it
	}
	if b.settleRepublished(msg, err) {
		return true
	}
	if err == nil || !b.spillsFresh(msg.Context(), err) {
		return false
	}
	return b.spillMessage(msg) == nil
}

// settleRepublished settles msg if it is a republished message the
// Breaker's republisher waits for, or one whose Republish gave up, and
// reports whether it was.
func (b *Breaker) settleRepublished(msg *message.Message, err error) bool {
	if e, ok := b.respills.take(msg.Context()); ok && err == nil {
		return b.settleRespilled(msg, e)
	}
	if b.settler != nil && b.settler.Settle(msg, err) {
		return true
	}
	return b.settleLate(msg.UUID, err)
}
