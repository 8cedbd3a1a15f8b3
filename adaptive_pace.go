package syncbreaker

import (
	"errors"
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// The adaptive pace. A server that has just come back, or that is simply
// slower than RepublisherConfig.Rate, must not get the backlog faster than
// it takes it: a burst it refuses would count as failures and open the
// circuit again after a handful of records. So, unless
// RepublisherConfig.FixedPace is set, the Breaker steers its
// republisher's pace (records a second) and its delivery window (records
// in flight) as TCP's congestion control and Vector's adaptive request
// concurrency steer theirs: additive increase, multiplicative decrease.
// Rate and MaxInFlight are the ceilings; the throughput a drain can reach
// is min(pace, window / handler latency).
//
// Start. A closed epoch (from a close of the circuit to its next
// opening) starts at paceStartRate records a second (or the ceiling when
// it is lower) and a window of 1. The state is the epoch's: it is reset
// when the circuit opens and kept across the rounds of the epoch.
//
// Ramp. Each Republish that returns nil is a success (with SettleTimeout:
// the handler settled the message as handled; with SettleTimeout 0: the
// publisher took it, which is all there is). Until the first cut, each
// success multiplies the pace by paceRampGrowth and adds 1 to the window
// (slow start): from 10 records a second, a server that keeps up sees
// the ceiling within about a third of a second of successes (the sum of
// 1/pace over the ramp, 0.1 s x 1/(1 - 1/1.5)), whatever the ceiling. After
// a cut each success adds paceAvoidStep records a second to the pace
// (about 20% a second at the pace it runs) and 1/window to the window (one
// a window of
// successes). Nothing waits for an outcome nobody records: growth comes
// from Republish returning, so a handler that records nothing drains at
// the ceiling.
//
// Cut. The bad outcomes are overloads (an error marked Overloaded, a 429
// or a 503 without Retry-After), settle timeouts and failures (what
// RecordFailure, Execute or Middleware count as a failure of the server
// while the circuit is closed). Ratios are taken over the last N
// outcomes since the last cut, N = max(FailureThreshold,
// paceMinOutcomes). A settle timeout cuts at once; overloads cut when
// they make up a tenth of the last N, at least two, so one poison record
// refused every round never halves the pace; failures, overloads
// included, cut when they make up half of the last N: a server that
// refuses some records while it takes the others says those records are
// at fault (each refusal is an attempt), one that fails half of
// everything is struggling. A cut multiplies
// the pace (floor paceMinRate) and the window (floor 1) by paceCut and
// starts the count afresh (and the pace goes no higher than
// paceDeliveredCut of the successes of the last second, so a ramp that
// overshot comes down in one cut); the outcomes of the records in flight at the
// cut (as many as the window was) are not counted towards the next one,
// since they were sent at the old pace. A RetryAfter opens the circuit,
// which resets the state; a publish error says nothing about the server
// and is no signal.
//
// Overload is not the record's failure. A record refused with Overloaded
// counts no attempt: its Republish is offered again at once, at the pace
// just cut, up to paceOverloadOffers times in all, and a record still
// refused stays in its place for a follow-up round followUpDelay after
// the round ends (fresh traffic refused with Overloaded is spilled and
// goes out with that round too). Towards FailureThreshold an overload
// counts as a failure, except the refusals of the records in flight when
// the pace was last cut: they are the burst the cut answers. So a burst
// of refusals while the window shrinks does not open the circuit of a
// server that is only slow (its successes reset the count between cuts,
// and a cut takes two counted overloads); a server that refuses
// everything opens it once FailureThreshold overloads have counted, after
// at most FailureThreshold + (FailureThreshold/2) x MaxInFlight refusals
// (the uncounted ones are at most a window per cut); and a server that is
// down (connections refused, timeouts, errors not marked Overloaded)
// opens it within FailureThreshold failures in a row, exactly as without
// the adaptive pace: failures always count. With the pace fixed
// (FixedPace, or a republisher that is not a PaceController) every
// overload counts as a failure, never as an attempt.
const (
	// paceStartRate is the pace a closed epoch starts at, records a second.
	paceStartRate = 10.0
	// paceMinRate is the lowest pace cuts go down to, records a second.
	paceMinRate = 1.0
	// paceRampGrowth multiplies the pace on each success until the
	// first cut.
	paceRampGrowth = 1.5
	// paceAvoidStep is what a success adds to the pace after a cut,
	// records a second.
	paceAvoidStep = 0.2
	// paceCut multiplies the pace and the window on a cut.
	paceCut = 0.8
	// paceDeliveredCut times the rate of successes over the last second
	// is the most a cut leaves: a ramp that overshot comes down to what
	// the server took in one cut, not in several.
	paceDeliveredCut = 0.9
	// paceMinOutcomes is the least N of the overload ratio.
	paceMinOutcomes = 20
	// paceOverloadOffers is how many times a round offers a record the
	// server refuses with Overloaded before it leaves it for a follow-up
	// round.
	paceOverloadOffers = 5
	// followUpDelay is how long after a round with overload refusals the
	// follow-up round starts.
	followUpDelay = 500 * time.Millisecond
)

// Overloaded marks err as the server's "too busy" without a delay: a 429,
// or a 503 without Retry-After (a Retry-After is RetryAfter's). The
// server is up and answers, so this is not the record's failure: Execute,
// Middleware and Breaker.Settle recognise it through any wrapping, cut the
// republish pace, spill a fresh payload (SpillOnSettle) and count no
// attempt for a republished record, which is offered again. Towards
// FailureThreshold it counts as a failure, except for the refusals of the
// records in flight when the pace was cut (see above). A handler returns
// it instead of calling RecordFailure (Breaker.Settle or Middleware
// record it; a handler that also called RecordFailure would count it
// twice). Overloaded(nil) is nil. Permanent and RetryAfter take
// precedence over it.
func Overloaded(err error) error {
	if err == nil {
		return nil
	}
	return &overloadedError{err: err}
}

// IsOverloaded reports whether err's chain holds an Overloaded error.
func IsOverloaded(err error) bool {
	var o *overloadedError
	return errors.As(err, &o)
}

type overloadedError struct{ err error }

func (e *overloadedError) Error() string { return e.err.Error() + " (server overloaded)" }
func (e *overloadedError) Unwrap() error { return e.err }

// isOverload reports whether err is an overload signal: Overloaded, and
// neither Permanent nor RetryAfter.
func isOverload(err error) bool {
	if err == nil || IsPermanent(err) {
		return false
	}
	if _, ok := RetryAfterDelay(err); ok {
		return false
	}
	return IsOverloaded(err)
}

// paceSignal is a bad outcome.
type paceSignal int

const (
	paceOverload      paceSignal = iota // Overloaded
	paceFailure                         // a failure of the server
	paceSettleTimeout                   // a republished message not settled in time
)

// paceOutcome is one outcome in the ratio's ring.
type paceOutcome uint8

const (
	paceGood paceOutcome = iota
	paceOver
	paceFailed
)

// adaptivePace is a closed epoch's pace and window (see the comment
// above). Its methods are safe for concurrent use; rate and window are
// lock-free reads.
type adaptivePace struct {
	ceilRate float64 // records a second; +Inf: not paced
	ceilWin  int
	start    float64 // min(paceStartRate, ceilRate)
	cutOver  int     // overloads among the last len(ring) that cut
	cutFail  int     // bad outcomes among the last len(ring) that cut

	rateBits atomic.Uint64 // the pace, float64 bits
	win      atomic.Int64
	cuts     atomic.Uint64

	mu     sync.Mutex // guards the fields below
	rate   float64
	winF   float64
	ramp   bool          // slow start: no cut yet this epoch
	ring   []paceOutcome // the last outcomes since the last cut
	pos, n int           // next slot, slots filled
	nOver  int           // overloads in ring
	nFail  int           // failures in ring
	skip   int           // outcomes still to come of records in flight at the last cut
	// The last successes' times, for the delivered rate a cut goes down
	// to: a ring of len(succ), si the next slot, sn slots filled.
	succ   [16]time.Time
	si, sn int
}

func newAdaptivePace(ceilRate float64, ceilWin, threshold int) *adaptivePace {
	n := max(threshold, paceMinOutcomes)
	p := &adaptivePace{
		ceilRate: ceilRate,
		ceilWin:  max(ceilWin, 1),
		start:    min(paceStartRate, ceilRate),
		cutOver:  max(2, (n+9)/10),
		cutFail:  max(2, (n+1)/2),
		ring:     make([]paceOutcome, n),
	}
	p.reset()
	return p
}

// reset starts a new epoch.
func (p *adaptivePace) reset() {
	p.mu.Lock()
	p.rate, p.winF, p.ramp, p.skip = p.start, 1, true, 0
	p.si, p.sn = 0, 0
	p.clearLocked()
	p.publishLocked()
	p.mu.Unlock()
}

// pace returns the current pace in records a second (+Inf: not paced).
func (p *adaptivePace) pace() float64 {
	if math.IsInf(p.ceilRate, 1) {
		return p.ceilRate
	}
	return math.Float64frombits(p.rateBits.Load())
}

// window returns the current window.
func (p *adaptivePace) window() int { return int(p.win.Load()) }

// success records a Republish that returned nil.
func (p *adaptivePace) success() {
	now := time.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.succ[p.si] = now
	p.si = (p.si + 1) % len(p.succ)
	p.sn = min(p.sn+1, len(p.succ))
	if p.skip > 0 {
		p.skip--
	}
	p.pushLocked(paceGood)
	if p.ramp {
		p.rate *= paceRampGrowth
		p.winF++
	} else {
		p.rate += paceAvoidStep
		p.winF += 1 / p.winF
	}
	p.rate = min(p.rate, p.ceilRate)
	p.winF = min(p.winF, float64(p.ceilWin))
	p.publishLocked()
}

// signal records a bad outcome and reports whether it counts towards
// FailureThreshold as an overload: false for the outcome of a record in
// flight at the last cut.
func (p *adaptivePace) signal(s paceSignal) (counts bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.skip > 0 {
		p.skip-- // sent at the pace before the last cut
		return false
	}
	o := paceFailed
	if s == paceOverload {
		o = paceOver
	}
	p.pushLocked(o)
	if s == paceSettleTimeout || p.nOver >= p.cutOver || p.nOver+p.nFail >= p.cutFail {
		p.cutLocked()
	}
	return true
}

// cutLocked requires p.mu held.
func (p *adaptivePace) cutLocked() {
	p.skip = int(p.winF)
	to := p.rate * paceCut
	if d := p.deliveredLocked(time.Now()); d > 0 {
		to = min(to, d*paceDeliveredCut)
	}
	p.rate = max(to, min(paceMinRate, p.ceilRate))
	p.winF = max(p.winF*paceCut, 1)
	p.ramp = false
	p.clearLocked()
	p.cuts.Add(1)
	p.publishLocked()
}

// deliveredLocked requires p.mu held. It returns the rate of successes
// over the last second (or since the first of them, when later), 0 when
// there are too few to tell.
func (p *adaptivePace) deliveredLocked(now time.Time) float64 {
	k, first := 0, now
	for i := range p.sn {
		t := p.succ[(p.si-1-i+2*len(p.succ))%len(p.succ)]
		if now.Sub(t) > time.Second {
			break
		}
		k, first = k+1, t
	}
	span := now.Sub(first)
	if k < 4 || span <= 0 {
		return 0
	}
	return float64(k) / span.Seconds()
}

// pushLocked requires p.mu held.
func (p *adaptivePace) pushLocked(o paceOutcome) {
	if p.n == len(p.ring) {
		p.count(p.ring[p.pos], -1)
	}
	p.ring[p.pos] = o
	p.count(o, 1)
	p.pos = (p.pos + 1) % len(p.ring)
	p.n = min(p.n+1, len(p.ring))
}

// count requires p.mu held.
func (p *adaptivePace) count(o paceOutcome, d int) {
	switch o {
	case paceOver:
		p.nOver += d
	case paceFailed:
		p.nFail += d
	}
}

// clearLocked requires p.mu held.
func (p *adaptivePace) clearLocked() {
	clear(p.ring)
	p.pos, p.n, p.nOver, p.nFail = 0, 0, 0, 0
}

// publishLocked requires p.mu held.
func (p *adaptivePace) publishLocked() {
	p.rateBits.Store(math.Float64bits(p.rate))
	p.win.Store(int64(p.winF))
}

// overload records an overload refusal of a call that started under the
// word seen (see success for sameGen) and reports whether the circuit is
// open afterwards. It counts towards FailureThreshold unless it answers
// a burst the pace was cut for (see adaptivePace.signal); a round follows
// soon for what it left pending.
func (b *Breaker) overload(seen uint64, sameGen bool) (open bool) {
	b.overloads.Add(1)
	counts := true
	if b.pace != nil && stateOf(b.word.Load()) == StateClosed {
		counts = b.pace.signal(paceOverload)
	}
	b.armFollowUp()
	if counts {
		return b.failure(seen, sameGen)
	}
	return stateOf(b.word.Load()) == StateOpen
}

// armFollowUp asks for a round followUpDelay from now, or, while a round
// runs, followUpDelay after it ends (RetryPending calls it again then).
// Like every retry it needs Run, which owns the timer.
func (b *Breaker) armFollowUp() {
	b.followUp.Store(true)
	if b.replaying.Load() {
		return // the round's end arms it; see RetryPending
	}
	if b.followUp.Swap(false) {
		b.retryWithin(followUpDelay)
	}
}
