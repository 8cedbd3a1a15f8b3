package syncbreaker

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// CircuitBreaker is the part of a breaker a sync handler needs. It is a
// drop-in for the interface the shell-history daemon declared for itself, so
// handlers can depend on it and tests can mock it.
type CircuitBreaker interface {
	// IsOpen reports whether calls to the server should be skipped.
	IsOpen() bool
	// RecordSuccess reports that a call to the server succeeded.
	RecordSuccess()
	// RecordFailure reports that a call to the server failed.
	RecordFailure()
	// SaveForRetry spills payload to the pending store.
	SaveForRetry(ctx context.Context, payload []byte) error
}

var _ CircuitBreaker = (*Breaker)(nil)

// State is the state of the circuit.
type State int

const (
	// StateClosed: calls go to the server and failures are counted.
	StateClosed State = iota
	// StateOpen: calls are skipped and payloads are spilled to the store.
	StateOpen
	// StateHalfOpen: the open interval has passed; calls go to the server
	// again as probes and the first recorded outcome decides.
	StateHalfOpen
)

// String returns "closed", "open" or "half-open".
func (s State) String() string {
	switch s {
	case StateClosed:
		return "closed"
	case StateOpen:
		return "open"
	case StateHalfOpen:
		return "half-open"
	default:
		return fmt.Sprintf("State(%d)", int(s))
	}
}

// Config configures a Breaker. The zero value is a working breaker with the
// documented defaults. A value that cannot work (a negative count or
// interval, a NaN) makes New fail with ErrInvalidConfig naming the field,
// rather than become a default.
type Config struct {
	// FailureThreshold is the number of consecutive failures that opens the
	// circuit. 0 means DefaultFailureThreshold (10); negative, or above
	// math.MaxInt32, is an error.
	FailureThreshold int
	// ResetInterval is how long the circuit stays open before it goes
	// half-open, counted from the moment it opened, and how often pending
	// records are retried while it is closed. 0 means DefaultResetInterval
	// (1h); negative is an error.
	ResetInterval time.Duration
	// Multiplier grows the open interval on each re-open from half-open
	// without a close in between. 0 means DefaultMultiplier (2); 1 disables
	// growth; below 1, NaN or infinite is an error. A close resets the
	// growth.
	Multiplier float64
	// MaxResetInterval caps the grown open interval (before jitter). 0 means
	// DefaultMaxResetFactor (8) times ResetInterval. It must not be below
	// ResetInterval, and with Jitter added it must fit a time.Duration
	// (about 292 years).
	MaxResetInterval time.Duration
	// Jitter spreads every open interval uniformly over ±Jitter of its
	// length. 0 means DefaultJitter (0.1); a negative value disables jitter.
	// It must be below 1 (and not NaN).
	Jitter float64
	// Rand is the jitter source. It is only used with the Breaker's mutex
	// held, so an unsynchronised *rand.Rand is fine. nil means math/rand/v2's
	// top-level generator (no global state is seeded or mutated).
	Rand *rand.Rand
	// IsFailure classifies an error returned by the send function of
	// Execute (or the handler wrapped by Middleware): true means the server
	// is failing, so the error counts towards FailureThreshold. Errors
	// marked with Permanent and context errors caused by the caller's own
	// context ending are never passed to it: they never count and their
	// payload is never spilled. An error for which IsFailure returns false is
	// treated like a Permanent one. nil means every other error is a failure.
	IsFailure func(error) bool
	// OnStateChange, when not nil, is called for every state change, in the
	// order the changes happened, outside any lock of the Breaker: it may
	// call any method of the Breaker, Stats included. Calls never overlap;
	// a change made while an earlier notification is being delivered is
	// delivered after it, possibly on the goroutine delivering the earlier
	// one. A slow callback delays later notifications, not the breaker.
	OnStateChange func(StateChange)
	// Logger receives state changes and replay summaries (sizes and record
	// IDs only, never payload content). nil means discard.
	Logger *slog.Logger
}

// StateChange describes one transition of the circuit.
type StateChange struct {
	From, To State
	// At is when the change happened.
	At time.Time
	// OpenInterval is how long the circuit stays open when To is StateOpen,
	// else 0.
	OpenInterval time.Duration
}

// Stats is a snapshot of a Breaker's state and counters.
type Stats struct {
	State State
	// ConsecutiveFailures counted while closed (0 in the other states).
	ConsecutiveFailures int
	// Opens counts transitions to StateOpen.
	Opens uint64
	// Spilled counts payloads the breaker appended to the store.
	Spilled uint64
	// SpillErrors counts appends to the store that failed.
	SpillErrors uint64
	// Republished counts records republished and removed from the store.
	Republished uint64
	// RepublishErrors counts failed Republish calls (not those abandoned
	// because the caller's context ended).
	RepublishErrors uint64
	// SettleTimeouts counts republished messages not settled within the
	// republisher's SettleTimeout (they stay pending, no attempt counted).
	SettleTimeouts uint64
	// Replays counts replays started by RetryPending or Run.
	Replays uint64
	// LastChange is when the state last changed (zero if it never did).
	LastChange time.Time
	// OpenInterval is the length of the current (or last) open interval.
	OpenInterval time.Duration
	// OpenUntil is when an open circuit goes half-open (zero unless open).
	OpenUntil time.Time
}

// Breaker is a circuit breaker that spills payloads to a PendingStore while
// the server is failing and republishes them through a Republisher once it
// recovers. Create it with New; call Run to drive the open interval and the
// periodic retries. All methods are safe for concurrent use.
//
// Closed: calls go to the server; FailureThreshold consecutive failures open
// the circuit and a success resets the count.
//
// Open: IsOpen is true and payloads are spilled. The circuit stays open for
// the open interval, counted from the moment it opened: ResetInterval for
// the first opening, multiplied by Multiplier for each re-open from
// half-open up to MaxResetInterval, spread by Jitter. A close resets the
// growth.
//
// Half-open: entered by Run when the open interval has passed. IsOpen is
// false, so calls go to the server as probes, and the first outcome recorded
// in this state decides: a success closes the circuit, a failure re-opens it
// at once. On entering half-open Run republishes what is pending; a
// Republish that returns nil does not close the circuit by itself, because a
// publisher accepting a message says nothing about the server. The
// republished messages reach the daemon's handler, and the first one the
// server accepts closes the circuit; with nothing pending, the next real
// call is the probe. Outcomes of calls that started before a state change
// are ignored (see Execute).
//
// In the closed state IsOpen and RecordSuccess are lock-free, allocate
// nothing and read no clock.
type Breaker struct {
	// word packs the consecutive failure count (bits 0-31), the State (bits
	// 32-33) and a generation counter (bits 34-63) bumped by every
	// transition, so the hot path is one atomic load and an outcome that
	// started before a transition can be told apart.
	word atomic.Uint64

	threshold   uint32
	interval    time.Duration
	isFailure   func(error) bool
	store       PendingStore
	republisher Republisher
	log         *slog.Logger

	spilled, spillErrors     atomic.Uint64
	republished, republishEr atomic.Uint64
	replays                  atomic.Uint64
	settleTimeouts           atomic.Uint64
	settleTimeoutsInRow      atomic.Uint64
	settler                  Settler           // the republisher, when it can settle; else nil
	respiller                *TopicRepublisher // the republisher, when it is one waiting for settles

	running   atomic.Bool
	replaying atomic.Bool
	wake      chan struct{} // cap 1: tells Run to recompute its timer

	notifier notifier

	mu sync.Mutex // guards the fields below and serialises transitions
	// opens counts transitions to open.
	opens        uint64
	reopens      int // consecutive re-opens from half-open, reset by a close
	growth       openInterval
	openInterval time.Duration
	openUntil    time.Time
	lastChange   time.Time
	nextRetry    time.Time               // when Run retries pending records while not open
	cancelReplay context.CancelCauseFunc // stops the running replay when the circuit opens
}

// New returns a closed Breaker. It starts nothing: call Run to drive the
// timers. store and republisher are required; the Breaker does not close the
// store.
func New(cfg Config, store PendingStore, republisher Republisher) (*Breaker, error) {
	if store == nil {
		return nil, fmt.Errorf("%w: store is a nil PendingStore", ErrInvalidConfig)
	}
	if republisher == nil {
		return nil, fmt.Errorf("%w: republisher is a nil Republisher", ErrInvalidConfig)
	}
	threshold := cfg.FailureThreshold
	switch {
	case threshold == 0:
		threshold = DefaultFailureThreshold
	case threshold < 0 || threshold > math.MaxInt32:
		return nil, fmt.Errorf("%w: FailureThreshold %d is out of range (0 to %d)", ErrInvalidConfig, cfg.FailureThreshold, math.MaxInt32)
	}
	interval := cfg.ResetInterval
	switch {
	case interval == 0:
		interval = DefaultResetInterval
	case interval < 0:
		return nil, fmt.Errorf("%w: ResetInterval %v is negative", ErrInvalidConfig, interval)
	}
	mult := cfg.Multiplier
	switch {
	case mult == 0:
		mult = DefaultMultiplier
	case mult < 1 || math.IsNaN(mult) || math.IsInf(mult, 0):
		return nil, fmt.Errorf("%w: Multiplier %v must be a finite number of at least 1", ErrInvalidConfig, cfg.Multiplier)
	}
	maxInterval := cfg.MaxResetInterval
	switch {
	case maxInterval == 0 && interval > math.MaxInt64/DefaultMaxResetFactor:
		maxInterval = math.MaxInt64 // rejected below, naming ResetInterval
	case maxInterval == 0:
		maxInterval = DefaultMaxResetFactor * interval
	case maxInterval < interval:
		return nil, fmt.Errorf("%w: MaxResetInterval %v is below ResetInterval %v", ErrInvalidConfig, maxInterval, interval)
	}
	jitter := cfg.Jitter
	switch {
	case jitter == 0:
		jitter = DefaultJitter
	case jitter < 0:
		jitter = 0
	case jitter >= 1 || math.IsNaN(jitter):
		return nil, fmt.Errorf("%w: Jitter %v must be a number below 1", ErrInvalidConfig, cfg.Jitter)
	}
	// The longest open interval, jitter included, must be a Duration.
	if float64(maxInterval)*(1+jitter) >= math.MaxInt64 {
		field, v := "MaxResetInterval", cfg.MaxResetInterval
		if v == 0 {
			field, v = "ResetInterval", interval
		}
		return nil, fmt.Errorf("%w: %s %v is too long: the open interval would overflow", ErrInvalidConfig, field, v)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	b := &Breaker{
		threshold:   uint32(threshold),
		interval:    interval,
		isFailure:   cfg.IsFailure,
		store:       store,
		republisher: republisher,
		log:         log,
		wake:        make(chan struct{}, 1),
		growth: openInterval{
			base:       interval,
			multiplier: mult,
			max:        maxInterval,
			jitter:     jitter,
			rng:        cfg.Rand,
		},
	}
	b.settler, _ = republisher.(Settler)
	if tr, ok := republisher.(*TopicRepublisher); ok && tr.settleTimeout > 0 {
		b.respiller = tr
	}
	b.notifier.fn = cfg.OnStateChange
	b.notifier.log = log
	return b, nil
}

const (
	countMask  = 1<<32 - 1
	stateShift = 32
	stateMask  = 3 << stateShift
	genShift   = 34
)

func stateOf(w uint64) State  { return State((w & stateMask) >> stateShift) }
func countOf(w uint64) uint32 { return uint32(w & countMask) }
func genOf(w uint64) uint64   { return w >> genShift }

// State returns the current state of the circuit.
func (b *Breaker) State() State { return stateOf(b.word.Load()) }

// IsOpen reports whether the circuit is open, that is whether calls to the
// server should be skipped and payloads spilled. It is false while half-open,
// so probes go through.
func (b *Breaker) IsOpen() bool { return stateOf(b.word.Load()) == StateOpen }

// RecordSuccess reports that a call to the server succeeded: it resets the
// consecutive failure count while closed and closes a half-open circuit. It
// is ignored while open (the call started before the circuit opened; only
// the open interval ends an open circuit).
func (b *Breaker) RecordSuccess() {
	w := b.word.Load()
	if w&(1<<genShift-1) == 0 { // closed, no failures: nothing to do
		return
	}
	b.success(w, false)
}

// RecordFailure reports that a call to the server failed. While closed it
// counts towards FailureThreshold; while half-open it re-opens the circuit at
// once; while open it is ignored.
func (b *Breaker) RecordFailure() { b.failure(b.word.Load(), false) }

// success records a success. With sameGen it is ignored unless the
// generation is still that of seen, the word read before the call started.
func (b *Breaker) success(seen uint64, sameGen bool) {
	for {
		w := b.word.Load()
		if sameGen && genOf(w) != genOf(seen) {
			return
		}
		switch stateOf(w) {
		case StateClosed:
			if countOf(w) == 0 || b.word.CompareAndSwap(w, w&^countMask) {
				return
			}
		case StateHalfOpen:
			if b.transition(w, StateClosed) {
				return
			}
		default:
			return
		}
	}
}

// failure records a failure (see success for seen and sameGen) and reports
// whether the circuit is open afterwards.
func (b *Breaker) failure(seen uint64, sameGen bool) (open bool) {
	for {
		w := b.word.Load()
		if sameGen && genOf(w) != genOf(seen) {
			return stateOf(w) == StateOpen
		}
		switch stateOf(w) {
		case StateClosed:
			if countOf(w)+1 < b.threshold {
				if b.word.CompareAndSwap(w, w+1) {
					return false
				}
				continue
			}
			if b.transition(w, StateOpen) {
				return true
			}
		case StateHalfOpen:
			if b.transition(w, StateOpen) {
				return true
			}
		default:
			return true
		}
	}
}

// Reset closes the circuit now, whatever its state, and resets the failure
// count and the growth of the open interval. It is meant for an operator
// who knows the server is back.
func (b *Breaker) Reset() {
	for {
		w := b.word.Load()
		if stateOf(w) == StateClosed {
			if countOf(w) == 0 || b.word.CompareAndSwap(w, w&^countMask) {
				b.mu.Lock()
				b.reopens = 0
				b.mu.Unlock()
				return
			}
			continue
		}
		if b.transition(w, StateClosed) {
			return
		}
	}
}

// transition moves the circuit from the exact word w to state to. It
// returns false, changing nothing, when the word changed since it was read
// (a concurrent outcome or transition won); the caller re-reads and decides
// again.
func (b *Breaker) transition(w uint64, to State) bool {
	b.mu.Lock()
	ok := b.transitionLocked(w, to, time.Now())
	b.mu.Unlock()
	if ok {
		b.afterTransition()
	}
	return ok
}

// transitionLocked requires b.mu held. The caller must call afterTransition
// after unlocking when it returns true.
func (b *Breaker) transitionLocked(w uint64, to State, now time.Time) bool {
	from := stateOf(w)
	nw := (genOf(w)+1)<<genShift | uint64(to)<<stateShift
	if !b.word.CompareAndSwap(w, nw) {
		return false
	}
	change := StateChange{From: from, To: to, At: now}
	b.lastChange = now
	switch to {
	case StateOpen:
		if from == StateHalfOpen {
			b.reopens++
		}
		b.opens++
		b.openInterval = b.growth.next(b.reopens)
		b.openUntil = now.Add(b.openInterval)
		change.OpenInterval = b.openInterval
		if b.cancelReplay != nil {
			b.cancelReplay(ErrOpen) // republishing stops as soon as the circuit opens
		}
	case StateClosed:
		b.reopens = 0
		b.openUntil = time.Time{}
		b.nextRetry = now.Add(b.interval)
	case StateHalfOpen:
		// Run replays on entering half-open; the next retry is a full
		// interval later, not a tick that fell due while open.
		b.openUntil = time.Time{}
		b.nextRetry = now.Add(b.interval)
	}
	b.notifier.enqueue(change)
	return true
}

// afterTransition wakes Run so it recomputes its timer and delivers pending
// notifications. It must be called without b.mu held.
func (b *Breaker) afterTransition() {
	select {
	case b.wake <- struct{}{}:
	default:
	}
	b.notifier.deliver()
}

// Stats returns a snapshot of the breaker's state and counters. It is safe
// to call from any goroutine, OnStateChange included.
func (b *Breaker) Stats() Stats {
	b.mu.Lock()
	w := b.word.Load()
	s := Stats{
		State:        stateOf(w),
		Opens:        b.opens,
		LastChange:   b.lastChange,
		OpenInterval: b.openInterval,
		OpenUntil:    b.openUntil,
	}
	b.mu.Unlock()
	s.ConsecutiveFailures = int(countOf(w))
	s.Spilled = b.spilled.Load()
	s.SpillErrors = b.spillErrors.Load()
	s.Republished = b.republished.Load()
	s.RepublishErrors = b.republishEr.Load()
	s.Replays = b.replays.Load()
	s.SettleTimeouts = b.settleTimeouts.Load()
	return s
}

// SaveForRetry appends payload to the pending store and counts it as
// spilled. On error the caller still owns the payload.
//
// A payload that is a republished record still in flight (the handler of a
// republished message spilling it again, as a handler does when the
// circuit is open or the send failed) is not appended again: the record
// stays pending in its place, under its own ID, and SaveForRetry returns
// nil. This holds when the publisher hands the handler the published
// payload itself, as a GoChannel does; with other publishers the payload
// is spilled as a new record.
func (b *Breaker) SaveForRetry(ctx context.Context, payload []byte) error {
	if b.respiller != nil && b.respiller.settleRespilled(payload) {
		return nil
	}
	if err := b.store.Append(ctx, payload); err != nil {
		b.spillErrors.Add(1)
		b.log.LogAttrs(ctx, slog.LevelError, "syncbreaker: spill failed", slog.Int("bytes", len(payload)))
		return wrapErr(err, "spill %d bytes", len(payload))
	}
	b.spilled.Add(1)
	return nil
}
