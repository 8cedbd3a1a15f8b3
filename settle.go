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
// processor loop that has no router (Middleware does this itself). It
// forwards to the Breaker's republisher when that is a Settler, and returns
// whether the republisher was waiting for msg; then the daemon acks msg,
// whatever err is: nil removes the record from the store, an error leaves
// it pending in its place (a Permanent one dead-letters it). That holds
// for a message handled after its Republish gave up waiting for it too: a
// JSONLStore then removes the record at the next round instead of
// delivering it again (see late_settle.go). A false return means msg is
// fresh traffic, or was republished before a restart, or settled already:
// ack or nack it as usual.
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
// It never blocks and costs one metadata lookup for a message the
// republisher did not publish.
func (b *Breaker) Settle(msg *message.Message, err error) bool {
	if msg == nil {
		return false
	}
	if e, ok := b.respills.take(msg.Context()); ok && err == nil {
		return b.settleRespilled(msg.UUID, func(err error) bool { return b.settler.Settle(msg, err) }, e)
	}
	if b.settler != nil && b.settler.Settle(msg, err) {
		return true
	}
	return b.settleLate(msg.UUID, err)
}
