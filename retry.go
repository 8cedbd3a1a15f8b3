package syncbreaker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// errRoundStopped stops a replay round after the first failed republish.
var errRoundStopped = errors.New("syncbreaker: replay round stopped")

// Run drives the breaker's timers until ctx ends, then returns nil. It owns
// one timer: while the circuit is open it fires when the open interval,
// counted from the moment the circuit opened, has passed; the circuit then
// goes half-open and pending records are republished (see RetryPending).
// While the circuit is closed or half-open it fires every ResetInterval and
// republishes pending records, so records left from an earlier run or a
// failed republish go out without waiting for another outage.
//
// Without Run an open circuit stays open until Reset. Run starts no
// goroutine of its own and returns promptly when ctx ends (a replay in
// progress is cancelled through its context). A second Run while one is
// active returns ErrAlreadyRunning; Run may be called again after it
// returned.
func (b *Breaker) Run(ctx context.Context) error {
	if !b.running.CompareAndSwap(false, true) {
		return ErrAlreadyRunning
	}
	defer b.running.Store(false)

	b.mu.Lock()
	b.nextRetry = time.Now().Add(b.interval)
	b.mu.Unlock()

	timer := time.NewTimer(b.interval)
	defer timer.Stop()
	for {
		timer.Reset(b.untilTick(time.Now()))
		select {
		case <-ctx.Done():
			return nil
		case <-b.wake:
		case <-timer.C:
			b.tick(ctx)
		}
	}
}

// untilTick returns how long Run waits before its next tick.
func (b *Breaker) untilTick(now time.Time) time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	at := b.nextRetry
	if b.IsOpen() {
		at = b.openUntil
	}
	return max(at.Sub(now), 0)
}

// tick moves an open circuit whose interval has passed to half-open, and
// republishes pending records when that happened or a retry is due.
func (b *Breaker) tick(ctx context.Context) {
	now := time.Now()
	b.mu.Lock()
	w := b.word.Load()
	if stateOf(w) == StateOpen {
		if now.Before(b.openUntil) {
			b.mu.Unlock()
			return
		}
		// An open word is only changed under b.mu, so this cannot fail.
		b.transitionLocked(w, StateHalfOpen, now)
		b.mu.Unlock()
		b.afterTransition()
	} else {
		if now.Before(b.nextRetry) {
			b.mu.Unlock()
			return
		}
		b.nextRetry = now.Add(b.interval)
		b.mu.Unlock()
	}
	res, err := b.RetryPending(ctx)
	switch {
	case err == nil, errors.Is(err, ErrReplayInProgress), ctx.Err() != nil:
	default:
		b.log.LogAttrs(ctx, slog.LevelWarn, "syncbreaker: replay incomplete",
			slog.Int("republished", res.Republished), slog.Int("remaining", res.Remaining),
			slog.String("error", err.Error()))
	}
}

// RetryPending republishes pending records now, oldest first, through the
// Republisher; it may be called with or without Run. Records republished
// are removed from the store; the others stay, in order.
//
// The round stops at the first failed Republish (that record's attempt is
// counted; the rest are left untouched), so a publisher that is down is not
// hammered with the whole backlog. It also stops as soon as the circuit
// opens: the replay's context is cancelled and what was not republished
// stays pending. It returns the store's result with:
//   - nil when the round went through,
//   - ErrOpen when the circuit was or became open,
//   - ErrReplayInProgress at once when another replay is running (only one
//     replay runs at a time),
//   - ctx.Err() when ctx ended,
//   - a wrapped error naming the record ID when a Republish failed, or the
//     store failed.
func (b *Breaker) RetryPending(ctx context.Context) (ReplayResult, error) {
	if !b.replaying.CompareAndSwap(false, true) {
		return ReplayResult{}, ErrReplayInProgress
	}
	defer b.replaying.Store(false)

	rctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	b.mu.Lock()
	if b.IsOpen() { // checked under b.mu so an opening cannot slip in before cancel is registered
		b.mu.Unlock()
		return ReplayResult{}, ErrOpen
	}
	b.cancelReplay = cancel
	b.mu.Unlock()
	defer func() {
		b.mu.Lock()
		b.cancelReplay = nil
		b.mu.Unlock()
	}()

	b.replays.Add(1)
	var failed error
	res, err := b.store.Replay(rctx, func(ctx context.Context, rec Record) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := b.republisher.Republish(ctx, rec); err != nil {
			b.republishEr.Add(1)
			failed = fmt.Errorf("syncbreaker: republish record %s: %w", rec.ID, err)
			cancel(errRoundStopped)
			return err
		}
		return nil
	})
	b.republished.Add(uint64(max(res.Republished, 0)))
	b.log.LogAttrs(ctx, slog.LevelInfo, "syncbreaker: replay",
		slog.Int("republished", res.Republished), slog.Int("remaining", res.Remaining))

	if rctx.Err() != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) {
		err = nil // our own cancellation; the cause is reported below
	}
	if err != nil {
		err = fmt.Errorf("syncbreaker: replay: %w", err)
	}
	switch {
	case ctx.Err() != nil:
		return res, ctx.Err()
	case failed != nil:
		return res, errors.Join(failed, err)
	case errors.Is(context.Cause(rctx), ErrOpen):
		return res, errors.Join(fmt.Errorf("%w: replay stopped after %d records", ErrOpen, res.Republished), err)
	}
	return res, err
}
