package syncbreaker

import (
	"sync"
	"sync/atomic"
)

// Late settles. A republisher with a settle timeout gives up waiting for a
// republished message after that timeout, and a stopped round gives up on
// the messages it published: the record stays pending. If the daemon then
// settles the message after all, the next round would deliver it again. So
// the Breaker remembers the records whose Republish gave up (the last
// maxLateIDs), and its Settle for one of them returns true (the daemon
// acks the message, which is not fresh data) and, when the handler
// succeeded, tells a Tombstoner store: the record is removed at its next
// replay instead of being delivered again. A handler's error leaves the
// record pending, as an in-time settle would.

// The Breaker, not the republisher, keeps them: it sees every Republish
// that gave up (ErrSettleTimeout, or its round's context ended), whatever
// the Republisher is.

// maxLateIDs bounds the records a Breaker remembers giving up on.
const maxLateIDs = 1024

// lateIDs is a bounded set of record IDs, oldest evicted first. n lets
// Settle skip the lock while the set is empty, as it is unless rounds
// time out.
type lateIDs struct {
	n     atomic.Int64
	mu    sync.Mutex
	ids   map[string]struct{}
	order []string
}

func (l *lateIDs) add(id string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.ids[id]; ok {
		return
	}
	if l.ids == nil {
		l.ids = map[string]struct{}{}
	}
	for len(l.order) >= maxLateIDs {
		delete(l.ids, l.order[0])
		l.order = l.order[1:]
	}
	l.ids[id] = struct{}{}
	l.order = append(l.order, id)
	l.n.Store(int64(len(l.ids)))
}

// take removes id and reports whether it was there.
func (l *lateIDs) take(id string) bool {
	if l.n.Load() == 0 {
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.ids[id]; !ok {
		return false
	}
	delete(l.ids, id)
	for i, v := range l.order {
		if v == id {
			l.order = append(l.order[:i], l.order[i+1:]...)
			break
		}
	}
	l.n.Store(int64(len(l.ids)))
	return true
}

// settleLate settles msg's record if its Republish gave up on it: the
// record is still pending in its place, so the message is acked either way,
// and with err nil a Tombstoner removes it at the next replay (another
// store delivers it again: a repeat under the same ID).
func (b *Breaker) settleLate(id string, err error) bool {
	if !b.late.take(id) {
		return false
	}
	if err == nil && b.tombs != nil {
		b.tombs.SettleLate(id)
	}
	return true
}
