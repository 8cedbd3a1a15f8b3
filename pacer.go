package syncbreaker

import (
	"context"
	"sync"
	"time"
)

// pacer spaces events out to a steady rate with a bounded burst. It is a
// token bucket written as a schedule (GCRA): instead of a token count it
// keeps the time at which the bucket will next be full again, which needs no
// refill loop and no goroutine.
//
// A pacer is safe for concurrent use.
type pacer struct {
	interval  time.Duration // time between two events at the steady rate
	tolerance time.Duration // how far ahead of schedule a burst may run: (burst-1) * interval

	mu  sync.Mutex
	tat time.Time // theoretical arrival time of the next event at the steady rate
}

// newPacer returns a pacer allowing rate events per second on average and
// at most burst events back to back. rate and burst must be positive.
func newPacer(rate float64, burst int) *pacer {
	interval := max(time.Duration(float64(time.Second)/rate), 1)
	return &pacer{
		interval:  interval,
		tolerance: time.Duration(burst-1) * interval,
	}
}

// Wait blocks until the next event may happen, or until ctx ends, in which
// case it returns ctx.Err() and hands its slot back when no later caller has
// taken one after it.
func (p *pacer) Wait(ctx context.Context) error {
	now := time.Now()
	p.mu.Lock()
	start := p.tat
	if start.Before(now) {
		start = now
	}
	next := start.Add(p.interval)
	p.tat = next
	p.mu.Unlock()

	delay := start.Sub(now) - p.tolerance
	if delay <= 0 {
		return nil
	}
	timer := time.NewTimer(delay)
	defer timer.Stop()
	select {
	case <-timer.C:
		return nil
	case <-ctx.Done():
		p.mu.Lock()
		// Only the newest reservation can be undone without shifting the
		// slots of callers already waiting behind it.
		if p.tat.Equal(next) {
			p.tat = start
		}
		p.mu.Unlock()
		return ctx.Err()
	}
}
