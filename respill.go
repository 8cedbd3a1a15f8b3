package syncbreaker

import (
	"context"
	"reflect"

	"github.com/ThreeDotsLabs/watermill/message"
	"sync"
	"sync/atomic"
)

// Re-spill in place. A handler that finds the circuit open spills what it
// received with SaveForRetry. For a republished message that must not
// make a second record: the record is still pending under its own ID, in
// its place. Through the four-method interface the one thing a handler
// passes that identifies its message is SaveForRetry's ctx, msg.Context().
// A default GoChannel hands the subscriber a fresh context (a value set on
// the published message's context does not arrive), so the Breaker cannot
// tell at SaveForRetry which message it is for. It stores the payload as
// usual (durable before SaveForRetry returns, whatever the message turns
// out to be), remembers the context and the new record's ID, and decides
// when the message is settled:
//
//   - a republished message it waits for, or gave up on: its record takes
//     the bytes just spilled (re-marshalled, changed, shorter, longer or
//     empty) in its own place under its own ID, and the new record is
//     discarded, removed at the next replay without delivery;
//   - anything else (fresh traffic): the new record is its record.
//
// Contexts are compared by identity, so a fresh message, whose context is
// another object, is never taken for a republished one. Only a message
// settled as handled (err nil) takes the bytes: a handler that failed
// without spilling leaves its record as it was. Where a publisher hands
// several messages one context, a republished record may take the bytes
// another message's handler spilled under it; then its own handler
// returned nil (it sent or spilled), so the bytes it held were delivered
// or are in another record, and nothing is lost. Only spills made
// while a Republish is in flight are remembered, at most maxRespills and
// maxRespillBytes of them, oldest forgotten first; a forgotten one stays a
// record of its own (a copy, never a loss). A crash before the replay that
// keeps the new bytes commits delivers the old bytes again and the copy,
// under its own ID, once.

const (
	maxRespills     = 64
	maxRespillBytes = 8 << 20
)

type respill struct {
	ctx     context.Context
	id      string // the record SaveForRetry made
	payload []byte // its bytes, the Breaker's own copy
}

// respills is the bounded table of spills awaiting their message's settle.
type respills struct {
	n       atomic.Int64 // len(entries), read without the lock
	mu      sync.Mutex
	entries []respill // oldest first
	bytes   int
}

func (t *respills) note(ctx context.Context, id string, payload []byte) {
	if len(payload) > maxRespillBytes || ctx == nil || !reflect.TypeOf(ctx).Comparable() {
		return // stays a record of its own
	}
	e := respill{ctx: ctx, id: id, payload: append([]byte{}, payload...)}
	t.mu.Lock()
	defer t.mu.Unlock()
	for len(t.entries) > 0 && (len(t.entries) >= maxRespills || t.bytes+len(payload) > maxRespillBytes) {
		t.bytes -= len(t.entries[0].payload)
		t.entries[0] = respill{}
		t.entries = t.entries[1:]
	}
	t.entries = append(t.entries, e)
	t.bytes += len(payload)
	t.n.Store(int64(len(t.entries)))
}

// take removes the entries spilled under ctx and returns the last of them:
// the bytes the handler spilled last are the ones kept.
func (t *respills) take(ctx context.Context) (respill, bool) {
	if t.n.Load() == 0 || ctx == nil {
		return respill{}, false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	var last respill
	found := false
	kept := t.entries[:0]
	for _, e := range t.entries {
		if e.ctx == ctx {
			last, found = e, true
			t.bytes -= len(e.payload)
			continue
		}
		kept = append(kept, e)
	}
	clear(t.entries[len(kept):])
	t.entries = kept
	t.n.Store(int64(len(t.entries)))
	return last, found
}

// settleRespilled settles msg, whose handler spilled e, and reports
// whether msg was a republished message: then its record keeps e's bytes
// and e's record is discarded. A republisher that recognises its own
// messages lets the copy be discarded before the record's Republish
// returns, so a round that ends sees no copy left; with another the copy
// is discarded right after.
func (b *Breaker) settleRespilled(msg *message.Message, e respill) bool {
	// A message the republisher recognises is a republished one whatever
	// the settle finds (its record holds the content, pending or delivered
	// already), so its copy goes first.
	ours := b.recognizer != nil && b.recognizer.Recognizes(msg)
	if ours {
		b.discardCopy(e)
	}
	settled := b.settler.Settle(msg, Respilled(e.payload)) || b.late.take(msg.UUID)
	switch {
	case ours:
		return true
	case !settled:
		return false // fresh traffic: e's record is its record
	}
	b.discardCopy(e)
	return true
}

// discardCopy tombstones the record a re-spill made.
func (b *Breaker) discardCopy(e respill) {
	b.tombs.Discard(e.id)
	b.respilled.Add(1)
}
