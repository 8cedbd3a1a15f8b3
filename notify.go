package syncbreaker

import (
	"context"
	"log/slog"
	"sync"
)

// notifier delivers state changes in order, outside the Breaker's mutex.
// Changes are queued under the Breaker's mutex (so the queue order is the
// transition order) and delivered by whichever goroutine finds no delivery
// running; it drains the queue, so calls never overlap and never reorder.
type notifier struct {
	fn  func(StateChange)
	log *slog.Logger

	mu         sync.Mutex
	queue      []StateChange
	delivering bool
}

// enqueue is called with the Breaker's mutex held.
func (n *notifier) enqueue(c StateChange) {
	n.mu.Lock()
	n.queue = append(n.queue, c)
	n.mu.Unlock()
}

// deliver must be called without the Breaker's mutex held.
func (n *notifier) deliver() {
	n.mu.Lock()
	if n.delivering {
		n.mu.Unlock()
		return
	}
	n.delivering = true
	finished := false
	defer func() {
		if !finished { // the callback panicked: let the next change deliver
			n.mu.Lock()
			n.delivering = false
			n.mu.Unlock()
		}
	}()
	for len(n.queue) > 0 {
		c := n.queue[0]
		n.queue[0] = StateChange{}
		n.queue = n.queue[1:]
		n.mu.Unlock()
		n.emit(c)
		n.mu.Lock()
	}
	n.queue = n.queue[:0:0]
	n.delivering = false
	finished = true
	n.mu.Unlock()
}

func (n *notifier) emit(c StateChange) {
	level := slog.LevelInfo
	if c.To == StateOpen {
		level = slog.LevelWarn
	}
	n.log.LogAttrs(context.Background(), level, "syncbreaker: state change",
		slog.String("from", c.From.String()), slog.String("to", c.To.String()),
		slog.Duration("open_interval", c.OpenInterval))
	if n.fn != nil {
		n.fn(c)
	}
}
