package syncbreaker

import "sync"

// Late settles. A TopicRepublisher with SettleTimeout gives up waiting for
// a republished message after that timeout: the record stays pending and
// the round stops. If the daemon then settles the message after all, it
// would be delivered again by the next round. So the republisher remembers
// the records it gave up on (the last maxLateIDs), and a Settle for one of
// them returns true (the daemon acks the message, which is not fresh
// data) and, when the handler succeeded, tells the store, through the
// Breaker that wired them (see New): a JSONLStore removes the record at
// its next replay instead of delivering it again. A handler's error leaves
// the record pending, as an in-time settle would.

// maxLateIDs bounds the records a TopicRepublisher remembers giving up on.
const maxLateIDs = 1024

// lateSettler is implemented by a store that can take late settles.
type lateSettler interface {
	settleLate(id string)
}

var _ lateSettler = (*JSONLStore)(nil)

func (s *JSONLStore) settleLate(id string) { s.s.SettleLate(id) }

// lateIDs is a bounded set of record IDs, oldest evicted first.
type lateIDs struct {
	mu  sync.Mutex
	ids []string
}

func (l *lateIDs) add(id string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.ids) >= maxLateIDs {
		l.ids = append(l.ids[:0], l.ids[1:]...)
	}
	l.ids = append(l.ids, id)
}

// take removes id and reports whether it was there.
func (l *lateIDs) take(id string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i, v := range l.ids {
		if v == id {
			l.ids = append(l.ids[:i], l.ids[i+1:]...)
			return true
		}
	}
	return false
}
