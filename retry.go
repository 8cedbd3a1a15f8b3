package syncbreaker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
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
	b.nextRetry = b.now().Add(b.interval)
	b.mu.Unlock()

	timer := time.NewTimer(b.interval)
	defer timer.Stop()
	for {
		timer.Reset(b.untilTick(b.now()))
		select {
		case <-ctx.Done():
			return nil
		case <-b.wake:
		case <-timer.C:
			b.tick(ctx)
		}
	}
}

// Sleep. Go's timers count on the monotonic clock, which stops while a
// Linux or macOS machine is suspended: a laptop that slept through the
// night would resume its hour-long wait on waking. So Run never waits
// longer than wakeEvery, and each tick asks the wall clock too (due, by
// either clock, means due): an open interval or a retry that fell due
// while the machine slept fires within wakeEvery of waking.
const wakeEvery = 30 * time.Second

// due reports whether at has come by the monotonic clock or by the wall
// clock (which a suspend does not stop).
func due(now, at time.Time) bool {
	return !now.Before(at) || !now.Round(0).Before(at.Round(0))
}

// untilTick returns how long Run waits before its next tick.
func (b *Breaker) untilTick(now time.Time) time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	at := b.nextRetry
	if b.State() == StateOpen {
		at = b.openUntil
	}
	if due(now, at) {
		return 0
	}
	return min(at.Sub(now), at.Round(0).Sub(now.Round(0)), wakeEvery)
}

// tick moves an open circuit whose interval has passed to half-open, and
// republishes pending records when that happened or a retry is due.
func (b *Breaker) tick(ctx context.Context) {
	now := b.now()
	b.mu.Lock()
	w := b.word.Load()
	if stateOf(w) == StateOpen {
		if !due(now, b.openUntil) {
			b.mu.Unlock()
			return
		}
		// An open word is only changed under b.mu, so this cannot fail.
		b.transitionLocked(w, StateHalfOpen, now, 0)
		b.mu.Unlock()
		b.afterTransition()
	} else {
		if !due(now, b.nextRetry) {
			b.mu.Unlock()
			return
		}
		b.nextRetry = now.Add(b.interval)
		b.mu.Unlock()
	}
	res, err := b.RetryPending(ctx)
	switch {
	case errors.Is(err, ErrReplayInProgress):
		// What a retry soon after spills wanted is behind the running
		// round, in the active file: another round follows it.
		if b.retrySoonPending.Load() {
			b.armRetrySoon()
		}
	case err == nil, ctx.Err() != nil:
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
// How many at a time: with a RepublisherConfig.SettleTimeout each
// Republish returns only once the handler is done with its message. The
// store hands the round one record after the other, unless it is a
// JSONLStore and the republisher a TopicRepublisher whose MaxInFlight is
// above 1: then, while the circuit is closed, up to MaxInFlight records
// are in flight at once (published and not yet settled), and their
// outcomes still apply in the records' order. While the circuit is
// half-open the round also waits, before each record, until the record can
// be a probe: the previous record's probe has ended (its outcome closed or
// re-opened the circuit, or it gave its admission back) or
// HalfOpenProbeTimeout has passed since it was published, and the epoch has
// an admission free (or its admissions expired). So a recovering server
// gets one republished record at a time, even from a publisher that does
// not wait for settles, and a republished record meets the probe limit only
// when a fresh call took the admission first. Once the circuit closes the
// round goes on at the republisher's pace. A republished record that meets
// the limit is handled as if the circuit were open: with SettleTimeout it
// stays pending in its place, no attempt counted, and the round stops;
// without, its message is handled as fresh data (spilled as a new record).
//
// What a failed record does to the round:
//   - The handler refused it (an error wrapping ErrNotHandled) while the
//     circuit stays closed, that is while the server takes other traffic:
//     the record's attempt is counted and the round goes on, so one record
//     the server keeps rejecting never blocks the records behind it. A
//     refusal marked with Permanent dead-letters the record at once.
//   - The failure opened the circuit, or the circuit opened meanwhile: no
//     attempt is counted (the server is down, not the record) and the
//     round stops before the next record. A record already published is
//     still awaited; only ctx abandons it.
//   - Its message was not settled in time (ErrSettleTimeout): no attempt,
//     and the round stops; timeouts are counted in Stats and logged after
//     several in a row.
//   - Publish failed: the attempt is counted and the round stops, so a
//     publisher that is down is not hammered with the whole backlog.
//
// It returns the store's result with:
//   - nil when the round went through (ReplayResult counts failed and
//     dead-lettered records),
//   - ErrOpen when the circuit was or became open,
//   - ErrReplayInProgress at once when another replay is running (only one
//     replay runs at a time),
//   - ctx.Err() when ctx ended,
//   - a wrapped error naming the record ID when a Republish stopped the
//     round, or the store failed.
func (b *Breaker) RetryPending(ctx context.Context) (ReplayResult, error) {
	if !b.replaying.CompareAndSwap(false, true) {
		return ReplayResult{}, ErrReplayInProgress
	}
	defer func() {
		b.replaying.Store(false)
		if b.followUp.Load() {
			b.armFollowUp() // records refused as overloaded go out soon
		}
	}()

	// rctx ends the round: it is cancelled when the circuit opens, and by
	// the round itself. It stops the store before the next record, and
	// no Republish starts once it has ended; a record already handed to
	// Republish is awaited on ctx, the caller's, so its handler's outcome
	// (a re-spill, say) still applies. A Republish that gives up on a
	// record (a settle timeout, ctx ending) is remembered, so a handler
	// that settles it later still counts (see late_settle.go).
	rctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	b.mu.Lock()
	if b.State() == StateOpen { // checked under b.mu so an opening cannot slip in before cancel is registered
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
	var (
		stopped atomic.Pointer[error] // why the round stops; it stops before the next record
		// While the circuit is not closed, records go one at a time
		// (halfOpen held from the probe slot to the settle), so probe is
		// only used under it. A channel, not a mutex: a caller waits for
		// it or for the round's end.
		halfOpen = make(chan struct{}, 1)
		probe    roundProbe
	)
	republish := func(sctx context.Context, rec Record) error {
		if stopped.Load() != nil {
			cancel(errRoundStopped) // the store leaves this record and the rest as they are
			return errRoundStopped
		}
		if b.State() != StateClosed {
			select {
			case halfOpen <- struct{}{}:
			case <-sctx.Done():
				return sctx.Err() // the record stays as it is
			}
			if b.State() == StateClosed {
				<-halfOpen // closed meanwhile: no probe to wait for
			} else {
				defer func() { <-halfOpen }()
				if err := b.awaitProbeSlot(sctx, &probe); err != nil {
					return err // the round's context ended: the record stays as it is
				}
			}
		}
		if err := rctx.Err(); err != nil {
			return markErr(ErrNotAttempted, context.Cause(rctx)) // the record stays as it is
		}
		rerr := b.republishOnce(ctx, rec)
		// Refused as overloaded: offered again at once, at the pace the
		// refusal has cut (see adaptive_pace.go), with a payload of its
		// own (the first message's handler is done with its copy).
		for offers := 1; b.pace != nil && offers < paceOverloadOffers && isOverload(rerr) &&
			b.State() == StateClosed && rctx.Err() == nil; offers++ {
			if !errors.Is(rerr, ErrNotHandled) {
				b.overload(b.word.Load(), false) // the Republisher's own refusal
			}
			rec.Payload = bytes.Clone(rec.Payload)
			rerr = b.republishOnce(ctx, rec)
		}
		if rerr == nil {
			b.settleTimeoutsInRow.Store(0)
			return nil
		}
		var stop bool
		rerr, stop = b.classifyRepublishError(ctx, rec, rerr)
		if stop {
			stopped.CompareAndSwap(nil, &rerr)
		}
		return rerr
	}
	var res ReplayResult
	var err error
	if b.windowed != nil {
		// One at a time while not closed: the oldest record is the probe.
		window := func() int {
			switch {
			case b.State() != StateClosed:
				return 1
			case b.pace != nil:
				return b.pace.window()
			}
			return b.window
		}
		res, err = b.windowed.ReplayWindow(rctx, window, republish)
	} else {
		res, err = b.store.Replay(rctx, republish)
	}
	b.republished.Add(uint64(max(res.Republished, 0)))
	b.log.LogAttrs(ctx, slog.LevelInfo, "syncbreaker: replay",
		slog.Int("republished", res.Republished), slog.Int("failed", res.Failed),
		slog.Int("dead_lettered", res.DeadLettered), slog.Int("remaining", res.Remaining))

	if rctx.Err() != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) {
		err = nil // our own cancellation; the cause is reported below
	}
	if err != nil {
		err = wrapErr(err, "replay")
	}
	switch {
	case ctx.Err() != nil:
		return res, ctx.Err()
	case errors.Is(context.Cause(rctx), ErrOpen) || stopped.Load() != nil && errors.Is(*stopped.Load(), ErrOpen):
		return res, errors.Join(fmt.Errorf("%w: replay stopped after %d records", ErrOpen, res.Republished), err)
	case stopped.Load() != nil:
		return res, errors.Join(*stopped.Load(), err)
	}
	return res, err
}

// republishOnce hands rec to the republisher once, and tells the adaptive
// pace when it went through.
func (b *Breaker) republishOnce(ctx context.Context, rec Record) error {
	b.inFlight.Add(1)
	err := b.republisher.Republish(ctx, rec)
	b.inFlight.Add(-1)
	if err != nil && (errors.Is(err, ErrSettleTimeout) || ctx.Err() != nil) {
		b.late.add(rec.ID) // its handler may still settle it
	}
	if err == nil && b.pace != nil {
		b.pace.success()
	}
	return err
}

// classifyRepublishError turns a failed Republish into what the store
// should do with the record (see PendingStore.Replay) and says whether the
// round stops. ctx is the caller's.
func (b *Breaker) classifyRepublishError(ctx context.Context, rec Record, err error) (_ error, stop bool) {
	if ctx.Err() != nil {
		return err, true // the store sees its ctx ended: not an attempt
	}
	b.republishEr.Add(1)
	if d, ok := RetryAfterDelay(err); ok && !IsPermanent(err) {
		// The server said when to come back: the circuit is open (Settle
		// tripped it before this Republish returned), and the record is
		// not at fault.
		b.trip(b.word.Load(), false, d)
		return markErr(ErrNotAttempted, err), true
	}
	switch {
	case errors.Is(err, ErrSettleTimeout):
		b.settleTimeouts.Add(1)
		if b.pace != nil && b.State() == StateClosed {
			b.pace.signal(paceSettleTimeout)
		}
		if n := b.settleTimeoutsInRow.Add(1); n == settleTimeoutWarnAfter || n%100 == 0 {
			b.log.LogAttrs(ctx, slog.LevelWarn, "syncbreaker: republished messages are not being settled; "+
				"the handler is slow or the daemon does not call Settle (or Breaker.Middleware)",
				slog.Uint64("timeouts_in_a_row", n), slog.String("id", rec.ID))
		}
		return err, true
	case IsPermanent(err):
		return err, false // dead-lettered by the store
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded), errors.Is(err, ErrOpen):
		// The handler gave up, or found the circuit open: not the record.
		return markErr(ErrNotAttempted, err), errors.Is(err, ErrOpen)
	case b.State() != StateClosed:
		// The failure opened the circuit (or it opened meanwhile): the
		// server is down, which says nothing about this record.
		return markErr(ErrNotAttempted, err), true
	case isOverload(err):
		// The server is up and too busy: not the record. A handler's
		// refusal was recorded where it was settled; a Republisher's own
		// is recorded here. It stays in its place for a follow-up round.
		if !errors.Is(err, ErrNotHandled) {
			b.overload(b.word.Load(), false)
		}
		b.armFollowUp()
		return markErr(ErrNotAttempted, err), false
	case errors.Is(err, ErrNotHandled):
		if b.maxAttempts > 0 && rec.Attempts+1 >= b.maxAttempts {
			// Config.MaxAttempts: dead-lettered, never deleted.
			return Permanent(fmt.Errorf("%w (attempt %d of %d)", err, rec.Attempts+1, b.maxAttempts)), false
		}
		return err, false // an attempt; the round goes on
	}
	if !strings.Contains(err.Error(), rec.ID) {
		err = wrapErr(err, "republish record %s", rec.ID)
	}
	// Publish failed: the bus is down or closed (a daemon stopping after
	// pubsub.Close()), which says nothing about the record. No attempt;
	// the round stops so a publisher that is down is not hammered.
	return markErr(ErrNotAttempted, err), true
}

// settleTimeoutWarnAfter is how many settle timeouts in a row make the
// breaker warn that the daemon may not call Settle.
const settleTimeoutWarnAfter = 3

// roundProbe follows, for a replay round, the record it published last
// while the circuit was half-open.
type roundProbe struct {
	set bool
	seq uint64    // b.probeSeq when it was published
	at  time.Time // when it was published
}

// awaitProbeSlot returns at once when the circuit is not half-open. While
// it is half-open it waits until the next record may be published as a
// probe: the record p describes has had its probe end (a probe event since
// it was published, see probeEventLocked) or was published
// HalfOpenProbeTimeout ago, and the epoch has an admission free; admissions
// found expired are reset here. It returns ctx.Err() when ctx ends, and
// records in p the record about to be published.
func (b *Breaker) awaitProbeSlot(ctx context.Context, p *roundProbe) error {
	for {
		if b.State() != StateHalfOpen {
			*p = roundProbe{}
			return nil
		}
		now := time.Now()
		b.mu.Lock()
		w := b.word.Load()
		if stateOf(w) != StateHalfOpen {
			b.mu.Unlock()
			continue
		}
		var until time.Time
		switch {
		case p.set && p.seq == b.probeSeq && now.Before(p.at.Add(b.probeTimeout)):
			until = p.at.Add(b.probeTimeout) // the last record's probe may still run
		case countOf(w) < b.maxProbes:
			*p = roundProbe{set: true, seq: b.probeSeq, at: now}
			b.mu.Unlock()
			return nil
		case b.exhaustedAt.IsZero():
			until = now.Add(b.probeTimeout) // being noted by the call that took the last admission
		default:
			until = b.exhaustedAt.Add(b.probeTimeout)
			if !now.Before(until) {
				_, expired := b.expireLocked(w, now)
				b.mu.Unlock()
				if expired > 0 {
					b.logExpiry(expired)
				}
				continue
			}
		}
		if b.probeChanged == nil {
			b.probeChanged = make(chan struct{})
		}
		changed := b.probeChanged
		b.mu.Unlock()

		timer := time.NewTimer(until.Sub(now))
		select {
		case <-changed:
		case <-timer.C:
		case <-ctx.Done():
			timer.Stop()
			return ctx.Err()
		}
		timer.Stop()
	}
}

// Retry soon after a spill. A payload spilled while the circuit stays
// closed (Settle or Middleware spilling a failed send) should go out soon
// after the server answers again, not at the next ResetInterval tick. So
// such a spill marks the breaker, and the next success recorded while
// closed arms a retry retrySoonDelay later (a debounce: a burst of
// successes makes one round). Records that fail again in that round are
// settled as republished messages, never spilled, so they do not re-arm
// it. It needs Run, which owns the timer. Such a record arrives after newer
// messages.
const retrySoonDelay = 5 * time.Second

// noteClosedSpill marks a spill made while the circuit was closed.
func (b *Breaker) noteClosedSpill() {
	if b.State() == StateClosed {
		b.retrySoonPending.Store(true)
	}
}

// armRetrySoon moves the next retry to at most retrySoonDelay from now.
// It is called from the success path, never the closed, zero-count fast
// path of RecordSuccess (a spill follows a counted failure).
func (b *Breaker) armRetrySoon() {
	if b.retrySoonPending.Swap(false) {
		b.retryWithin(retrySoonDelay)
	}
}

// retryWithin moves the next retry to at most d from now, while the
// circuit is closed, and wakes Run to act on it. An open circuit keeps
// its interval: the half-open round is its retry.
func (b *Breaker) retryWithin(d time.Duration) {
	b.mu.Lock()
	if at := b.now().Add(d); stateOf(b.word.Load()) == StateClosed && at.Before(b.nextRetry) {
		b.nextRetry = at
	}
	b.mu.Unlock()
	b.wakeRun()
}
