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
	// IsOpen reports whether calls to the server should be skipped. Call
	// it once per send, just before the send: while the circuit is
	// half-open a false answer admits the call as a probe, and only a
	// limited number of probes are admitted.
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
	// StateHalfOpen: the open interval has passed; a limited number of
	// calls go to the server again as probes (the others are handled as if
	// the circuit were open) and the first recorded outcome decides.
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
	// min(DefaultMaxResetFactor (8) x ResetInterval, max(ResetInterval,
	// 1h)): the default one-hour circuit retries every hour, as a daemon
	// with an hourly ticker did, and a 30 s one grows to at most 4 minutes.
	// Set it to let a long outage be probed less often. It must not be
	// below ResetInterval, and with Jitter added it must fit a
	// time.Duration (about 292 years).
	MaxResetInterval time.Duration
	// HalfOpenMaxProbes is how many calls a half-open circuit lets through
	// to the server before the first outcome is recorded; the calls beyond
	// it are handled as if the circuit were open (IsOpen is true, Execute
	// and Middleware spill). 0 means DefaultHalfOpenMaxProbes (1): the
	// first outcome closes or re-opens the circuit anyway, so a second
	// probe in flight only adds load on a server that may still be down
	// (sony/gobreaker's MaxRequests and failsafe-go's default half-open
	// capacity are 1 too). Raise it when sends are slow and concurrent
	// callers should rather try the server than spill. Negative, or above
	// math.MaxInt32, is an error.
	HalfOpenMaxProbes int
	// HalfOpenProbeTimeout is how long a half-open circuit waits for an
	// outcome once its probes are all admitted (counted from the last
	// admission), and the longest a replay waits for the probe of the
	// record it published before it publishes the next. When it passes with no
	// outcome recorded (a handler that treats an answer as permanent and
	// records nothing, a send that hangs), the admissions expire: the next
	// calls are admitted as new probes, so a handler that never records an
	// outcome cannot keep the breaker spilling everything. An expired
	// probe that ends later still records its outcome through RecordSuccess
	// or RecordFailure; through Execute or Middleware it no longer decides
	// (as any call that started before a state change). 0 means
	// DefaultHalfOpenProbeTimeout (1m): longer than a send takes (make it
	// longer than your client's own timeout), short next to ResetInterval.
	// Negative is an error.
	HalfOpenProbeTimeout time.Duration
	// SpillFailures says which paths spill a payload whose send failed
	// while the circuit stays closed: the zero value, SpillOnSettle, has
	// Settle and Middleware spill it (see SpillMode).
	SpillFailures SpillMode
	// MaxAttempts dead-letters a republished record once it has failed
	// this many deliveries, whatever the store's own limit: with failed
	// sends spilled, a payload the server always rejects (a 4xx the
	// handler does not mark Permanent) would otherwise come back every
	// round. 0 means DefaultMaxAttempts (10) unless SpillFailures is
	// SpillWhenOpen, where it means no limit; negative means no limit.
	// The breaker applies it as it classifies an attempt (the record is
	// dead-lettered as if refused with Permanent), so it works with any
	// store that has dead letters; StoreConfig.MaxAttempts stays the
	// store's own limit. pendingctl requeue-dead brings such records back.
	MaxAttempts int
	// MaxRetryAfter caps the open interval a server's delay sets (a
	// RetryAfter error, or Trip). 0 means DefaultMaxRetryAfter (24h);
	// negative is an error. Delays under a second become a second.
	MaxRetryAfter time.Duration
	// Jitter spreads every open interval uniformly over ±Jitter of its
	// length. 0 means DefaultJitter (0.1); a negative value disables jitter.
	// It must be below 1 (and not NaN).
	Jitter float64
	// Rand is the jitter source. It is only used with the Breaker's mutex
	// held, so an unsynchronised *rand.Rand is fine. nil means math/rand/v2's
	// top-level generator (no global state is seeded or mutated).
	Rand *rand.Rand
	// IsFailure classifies an error returned by the send function of
	// Execute (or the handler wrapped by Middleware, or given to Settle):
	// true means the server is failing, so the error counts towards
	// FailureThreshold and a fresh payload is spilled (see SpillFailures).
	// Errors marked with Permanent and context errors caused by the
	// caller's own context ending are never passed to it. An error for
	// which IsFailure returns false is not counted and not spilled (the
	// caller keeps a fresh payload), but it is not Permanent: a republished
	// record refused with it counts a failed attempt, so MaxAttempts
	// decides, where only Permanent dead-letters a record at once. That is
	// how a daemon keeps, say, a 429 out of the failure count without
	// losing rate-limited records. nil means every other error is a
	// failure.
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
	// ProbesInFlight is how many probes the current half-open epoch has
	// admitted and not seen end (0 unless half-open).
	ProbesInFlight int
	// ProbesAdmitted counts calls admitted as half-open probes.
	ProbesAdmitted uint64
	// ProbesRejected counts calls a half-open circuit handled as if open
	// because its probes were all admitted.
	ProbesRejected uint64
	// ProbesExpired counts the times a half-open circuit's admissions all
	// expired, HalfOpenProbeTimeout after the last one was taken, with no
	// outcome recorded (each is also logged).
	ProbesExpired uint64
	// Opens counts transitions to StateOpen.
	Opens uint64
	// Spilled counts payloads the breaker appended to the store.
	Spilled uint64
	// Respilled counts the spills, among Spilled, that were a republished
	// record's own: the record kept the bytes in its place and the copy
	// is discarded (see SaveForRetry).
	Respilled uint64
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
	// Overloads counts refusals marked Overloaded (fresh or republished;
	// not attempts, see Overloaded).
	Overloads uint64
	// Pace is the republish pace in records a second: the adaptive pace
	// when Features().AdaptivePace (reset to its start when the circuit
	// opens), else the republisher's fixed Rate; math.Inf(1) when not
	// paced, 0 when the republisher does not say (not a PaceController).
	Pace float64
	// Window is how many records a replay may keep in flight while the
	// circuit is closed: the adaptive window, else Features().Window.
	Window int
	// PaceCuts counts the adaptive pace's cuts (see adaptive_pace.go).
	PaceCuts uint64
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
// Half-open: entered by Run when the open interval has passed. A half-open
// epoch lasts until the first outcome recorded in it: a success closes the
// circuit, a failure re-opens it at once. Within the epoch the first
// HalfOpenMaxProbes calls are admitted as probes (IsOpen is false for them,
// Execute and Middleware send) and the rest are handled as if the circuit
// were open. Admissions are counted per epoch, so an outcome needs no
// release and a caller holds no token; that is why a handler must call
// IsOpen once per send. Execute and Middleware give their admission back
// when the send ends without an outcome (a Permanent error, the caller's
// context ending, a panic); admissions nobody gives back expire after
// HalfOpenProbeTimeout. On entering half-open Run republishes what is
// pending, one probe at a time (see RetryPending); a Republish that returns
// nil does not close the circuit by itself, because a publisher accepting a
// message says nothing about the server. The republished messages reach the
// daemon's handler, and the first one the server accepts closes the
// circuit; with nothing pending, the next real call is the probe. Outcomes
// of calls that started before a state change, or whose admission expired,
// are ignored (see Execute).
//
// In the closed state IsOpen and RecordSuccess are lock-free, allocate
// nothing and read no clock.
type Breaker struct {
	// word packs a count (bits 0-31), the State (bits 32-33) and a
	// generation counter (bits 34-63) bumped by every transition and by an
	// expiry of half-open admissions, so the hot path is one atomic load
	// and an outcome that started before a transition can be told apart.
	// The count is the consecutive failures while closed, the probes the
	// epoch admitted while half-open (0 to maxProbes; taken by one CAS in
	// IsOpen, given back under mu), and 0 while open.
	word atomic.Uint64

	threshold     uint32
	maxProbes     uint32
	probeTimeout  time.Duration
	interval      time.Duration
	maxRetryAfter time.Duration
	now           func() time.Time // time.Now; a seam for tests of a machine that slept
	spillMode     SpillMode
	maxAttempts   int // 0: no limit
	isFailure     func(error) bool
	store         PendingStore
	republisher   Republisher
	log           *slog.Logger

	spilled, spillErrors     atomic.Uint64
	respilled                atomic.Uint64
	republished, republishEr atomic.Uint64
	replays                  atomic.Uint64
	settleTimeouts           atomic.Uint64
	probesAdmitted           atomic.Uint64
	probesRejected           atomic.Uint64
	probesExpired            atomic.Uint64
	settleTimeoutsInRow      atomic.Uint64
	overloads                atomic.Uint64

	// Optional capabilities of the republisher and the store, found at
	// New (see capabilities.go); nil when absent.
	settler     Settler
	windowed    WindowReplayer // set only with a window above 1
	window      int            // records a replay keeps in flight while closed
	recognizer  Recognizer
	idAppender  IDAppender
	msgAppender MessageAppender
	tombs       Tombstoner
	// pace steers the republisher (a PaceController) and the window;
	// nil when the pace is fixed (see adaptive_pace.go).
	pace *adaptivePace
	// inFlight counts Republish calls running; while it is 0 no spill can
	// be a republished message's (see respill.go).
	inFlight atomic.Int64
	respills respills
	late     lateIDs // records whose Republish gave up (see late_settle.go)

	// probeExpiry is a lock-free hint for calls refused a probe: when the
	// epoch's admissions expire, in nanoseconds since base (0: not all
	// taken, or not noted yet). Written under mu with exhaustedAt.
	probeExpiry atomic.Int64
	base        time.Time // the monotonic origin of probeExpiry

	running atomic.Bool
	// retrySoonPending: a payload was spilled while closed, and the next
	// success arms a retry soon (see armRetrySoon).
	retrySoonPending atomic.Bool
	replaying        atomic.Bool
	// followUp: a record or a payload was refused with Overloaded, and a
	// round follows followUpDelay after the current one (see armFollowUp).
	followUp atomic.Bool
	wake     chan struct{} // cap 1: tells Run to recompute its timer

	notifier notifier

	mu sync.Mutex // guards the fields below and serialises transitions
	// opens counts transitions to open.
	opens        uint64
	reopens      int // consecutive re-opens from half-open, reset by a close
	growth       openInterval
	openInterval time.Duration
	openUntil    time.Time
	serverDelay  bool // the current opening's interval is the server's (see Trip)
	lastChange   time.Time
	nextRetry    time.Time               // when Run retries pending records while not open
	cancelReplay context.CancelCauseFunc // stops the running replay when the circuit opens
	// exhaustedAt is when the half-open epoch's admissions were all taken
	// (zero when they are not, or not noted yet); they expire
	// probeTimeout later.
	exhaustedAt time.Time
	// probeSeq counts probe events: transitions, admissions given back and
	// expiries. A replay waiting for its probe (awaitProbeSlot) waits on
	// probeChanged, made by a waiter and closed by the next event.
	probeSeq     uint64
	probeChanged chan struct{}
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
	maxProbes := cfg.HalfOpenMaxProbes
	switch {
	case maxProbes == 0:
		maxProbes = DefaultHalfOpenMaxProbes
	case maxProbes < 0 || maxProbes > math.MaxInt32:
		return nil, fmt.Errorf("%w: HalfOpenMaxProbes %d is out of range (0 to %d)", ErrInvalidConfig, cfg.HalfOpenMaxProbes, math.MaxInt32)
	}
	probeTimeout := cfg.HalfOpenProbeTimeout
	switch {
	case probeTimeout == 0:
		probeTimeout = DefaultHalfOpenProbeTimeout
	case probeTimeout < 0:
		return nil, fmt.Errorf("%w: HalfOpenProbeTimeout %v is negative", ErrInvalidConfig, probeTimeout)
	}
	if cfg.SpillFailures < SpillOnSettle || cfg.SpillFailures > SpillWhenOpen {
		return nil, fmt.Errorf("%w: SpillFailures %d is not a SpillMode", ErrInvalidConfig, cfg.SpillFailures)
	}
	maxAttempts := cfg.MaxAttempts
	switch {
	case maxAttempts == 0 && cfg.SpillFailures != SpillWhenOpen:
		maxAttempts = DefaultMaxAttempts
	case maxAttempts < 0:
		maxAttempts = 0
	}
	maxRetryAfter := cfg.MaxRetryAfter
	switch {
	case maxRetryAfter == 0:
		maxRetryAfter = DefaultMaxRetryAfter
	case maxRetryAfter < 0:
		return nil, fmt.Errorf("%w: MaxRetryAfter %v is negative", ErrInvalidConfig, maxRetryAfter)
	}
	maxRetryAfter = max(maxRetryAfter, minRetryAfter)
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
		maxInterval = defaultMaxResetInterval(interval)
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
		threshold:     uint32(threshold),
		maxProbes:     uint32(maxProbes),
		probeTimeout:  probeTimeout,
		interval:      interval,
		maxRetryAfter: maxRetryAfter,
		now:           time.Now,
		isFailure:     cfg.IsFailure,
		spillMode:     cfg.SpillFailures,
		maxAttempts:   maxAttempts,
		store:         store,
		republisher:   republisher,
		log:           log,
		base:          time.Now(),
		wake:          make(chan struct{}, 1),
		growth: openInterval{
			base:       interval,
			multiplier: mult,
			max:        maxInterval,
			jitter:     jitter,
			rng:        cfg.Rand,
		},
	}
	b.discoverCapabilities()
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

// IsOpen reports whether calls to the server should be skipped and payloads
// spilled: true while the circuit is open, false while it is closed. While
// it is half-open, IsOpen admits the call as a probe and returns false for
// the first HalfOpenMaxProbes calls of the epoch, and returns true for the
// rest (see Breaker). Call it once per send, just before the send, and
// record the send's outcome with RecordSuccess or RecordFailure: each false
// answer while half-open takes an admission, and one that is never followed
// by an outcome holds it until HalfOpenProbeTimeout. To read the state
// without taking an admission, use State.
//
// Closed, it is one atomic load; half-open, one compare-and-swap admits a
// probe.
func (b *Breaker) IsOpen() bool {
	if w := b.word.Load(); w&stateMask != 0 { // not closed
		return b.refuse(w)
	}
	return false
}

// refuse is IsOpen for a word that is not closed, kept out of line so
// that IsOpen inlines into its callers.
//
//go:noinline
func (b *Breaker) refuse(w uint64) bool {
	_, ok := b.admit(w)
	return !ok
}

// admit decides a call that read the word w, which was not closed: it
// returns whether the call may go to the server and the word it runs under.
// Open: no. Half-open: yes when it took one of the epoch's admissions (the
// count bits), else no, unless the admissions have expired, which starts a
// fresh count. Closed (the circuit closed meanwhile): yes.
func (b *Breaker) admit(w uint64) (uint64, bool) {
	for {
		switch stateOf(w) {
		case StateClosed:
			return w, true
		case StateOpen:
			return w, false
		}
		if n := countOf(w); n < b.maxProbes {
			if b.word.CompareAndSwap(w, w+1) {
				b.probesAdmitted.Add(1)
				if n+1 == b.maxProbes {
					b.noteExhausted(w + 1)
				}
				return w + 1, true
			}
		} else if !b.expireProbes(w) {
			b.probesRejected.Add(1)
			return w, false
		}
		w = b.word.Load()
	}
}

// noteExhausted records when the epoch of w ran out of admissions, the
// moment its probe timeout counts from, unless the epoch has moved on.
func (b *Breaker) noteExhausted(w uint64) {
	now := time.Now()
	b.mu.Lock()
	cur := b.word.Load()
	if genOf(cur) == genOf(w) && stateOf(cur) == StateHalfOpen && countOf(cur) >= b.maxProbes && b.exhaustedAt.IsZero() {
		b.exhaustedAt = now
		d := int64(now.Sub(b.base))
		if d > math.MaxInt64-int64(b.probeTimeout) {
			d = math.MaxInt64
		} else {
			d += int64(b.probeTimeout)
		}
		b.probeExpiry.Store(max(d, 1))
	}
	b.mu.Unlock()
}

// expireProbes is called by a call refused a probe under the word w. It
// reports whether the word changed, so the call decides again: the epoch's
// admissions expired (and this call reset them) or anything else moved.
// Until the expiry is due it costs two atomic loads and a clock read.
func (b *Breaker) expireProbes(w uint64) (changed bool) {
	d := b.probeExpiry.Load()
	if d == 0 {
		return false
	}
	now := time.Now()
	if int64(now.Sub(b.base)) < d {
		return false
	}
	b.mu.Lock()
	changed, expired := b.expireLocked(w, now)
	b.mu.Unlock()
	if expired > 0 {
		b.logExpiry(expired)
	}
	return changed
}

// expireLocked requires b.mu held. If the word is still w and its epoch's
// admissions expired by now, it starts a fresh count under a new
// generation (so a late release of an expired probe cannot free a new
// one) and returns how many admissions expired; the caller logs them with
// logExpiry once it has unlocked. changed reports whether the word is no
// longer w.
func (b *Breaker) expireLocked(w uint64, now time.Time) (changed bool, expired uint32) {
	if b.word.Load() != w {
		return true, 0
	}
	if b.exhaustedAt.IsZero() || now.Before(b.exhaustedAt.Add(b.probeTimeout)) {
		return false, 0
	}
	nw := (genOf(w)+1)<<genShift | uint64(StateHalfOpen)<<stateShift
	if !b.word.CompareAndSwap(w, nw) {
		return true, 0
	}
	b.probesExpired.Add(1)
	b.probeEventLocked()
	return true, countOf(w)
}

// logExpiry reports an expiry of n admissions. It must be called without
// b.mu held.
func (b *Breaker) logExpiry(n uint32) {
	b.log.LogAttrs(context.Background(), slog.LevelWarn,
		"syncbreaker: half-open probes expired with no outcome recorded; a handler may call IsOpen without RecordSuccess or RecordFailure",
		slog.Int("probes", int(n)), slog.Duration("probe_timeout", b.probeTimeout))
}

// release gives back the admission a probe took under the word w when the
// probe ended with no outcome. It does nothing when w is not half-open or
// the epoch has ended (a transition or an expiry started a fresh count).
func (b *Breaker) release(w uint64) {
	if stateOf(w) != StateHalfOpen {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for {
		cur := b.word.Load()
		if genOf(cur) != genOf(w) || stateOf(cur) != StateHalfOpen || countOf(cur) == 0 {
			return
		}
		// Only admissions change a half-open word without b.mu, so this
		// retries at most as often as probes are admitted meanwhile.
		if b.word.CompareAndSwap(cur, cur-1) {
			b.probeEventLocked() // below the limit now: no expiry pending
			return
		}
	}
}

// probeEventLocked requires b.mu held. It records a probe event (a
// transition, an admission given back, an expiry): the admissions are no
// longer all taken, and a replay waiting for its probe looks again.
func (b *Breaker) probeEventLocked() {
	b.exhaustedAt = time.Time{}
	b.probeExpiry.Store(0)
	b.probeSeq++
	if b.probeChanged != nil {
		close(b.probeChanged)
		b.probeChanged = nil
	}
}

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
func (b *Breaker) RecordFailure() { b.serverFailure(b.word.Load(), false) }

// serverFailure is failure for a failure of the server (not an overload
// counted at the pace's floor): the adaptive pace sees it too.
func (b *Breaker) serverFailure(seen uint64, sameGen bool) (open bool) {
	if b.pace != nil && stateOf(b.word.Load()) == StateClosed {
		b.pace.signal(paceFailure)
	}
	return b.failure(seen, sameGen)
}

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
			if countOf(w) == 0 {
				return
			}
			if b.word.CompareAndSwap(w, w&^countMask) {
				// The first success after failures: a spill follows a
				// counted failure, so this is where a retry soon is armed.
				if b.retrySoonPending.Load() {
					b.armRetrySoon()
				}
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
	ok := b.transitionLocked(w, to, b.now(), 0)
	b.mu.Unlock()
	if ok {
		b.afterTransition()
	}
	return ok
}

// transitionLocked requires b.mu held. The caller must call afterTransition
// after unlocking when it returns true. serverDelay > 0 opens the circuit
// for that long instead of the grown interval (see Trip).
func (b *Breaker) transitionLocked(w uint64, to State, now time.Time, serverDelay time.Duration) bool {
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
		b.serverDelay = serverDelay > 0
		if b.serverDelay {
			b.openInterval = serverDelay
		}
		b.openUntil = now.Add(b.openInterval)
		change.OpenInterval = b.openInterval
		if b.pace != nil {
			b.pace.reset() // the next closed epoch starts low again
		}
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
	b.probeEventLocked() // a new epoch: the count starts at 0
	b.notifier.enqueue(change)
	return true
}

// afterTransition wakes Run so it recomputes its timer and delivers pending
// notifications. It must be called without b.mu held.
func (b *Breaker) afterTransition() {
	b.wakeRun()
	b.notifier.deliver()
}

// wakeRun tells Run to recompute its timer; it never blocks.
func (b *Breaker) wakeRun() {
	select {
	case b.wake <- struct{}{}:
	default:
	}
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
	switch s.State {
	case StateClosed:
		s.ConsecutiveFailures = int(countOf(w))
	case StateHalfOpen:
		s.ProbesInFlight = int(countOf(w))
	}
	s.ProbesAdmitted = b.probesAdmitted.Load()
	s.ProbesRejected = b.probesRejected.Load()
	s.ProbesExpired = b.probesExpired.Load()
	s.Spilled = b.spilled.Load()
	s.SpillErrors = b.spillErrors.Load()
	s.Respilled = b.respilled.Load()
	s.Republished = b.republished.Load()
	s.RepublishErrors = b.republishEr.Load()
	s.Replays = b.replays.Load()
	s.SettleTimeouts = b.settleTimeouts.Load()
	s.Overloads = b.overloads.Load()
	s.Window = b.window
	switch pc, _ := b.republisher.(PaceController); {
	case b.pace != nil:
		s.Pace, s.Window, s.PaceCuts = b.pace.pace(), b.pace.window(), b.pace.cuts.Load()
	case pc != nil:
		s.Pace, _, _ = pc.PaceCeiling()
	}
	return s
}

// SaveForRetry appends payload to the pending store and counts it as
// spilled; it returns nil once the store has it. On error the caller still
// owns the payload.
//
// A handler that spills a republished message again (the circuit is open,
// or its send failed) keeps the message's record, its ID and its place,
// when it passes the message's context: SaveForRetry(msg.Context(),
// payload). The bytes it spills are what the record holds from then on
// (re-marshalled, changed, shorter, longer or empty), and the message is
// then settled with Breaker.Settle (or Middleware) with a nil error; no
// second record remains. That needs a republisher that is a Settler and a
// store that is an IDAppender and a Tombstoner (a TopicRepublisher and a
// JSONLStore, or decorators that embed them; see Features). With another
// context, or other parts, the payload becomes a new record, delivered
// besides the old one: a copy, never a loss. How it works is in
// respill.go.
func (b *Breaker) SaveForRetry(ctx context.Context, payload []byte) error {
	if b.inFlight.Load() == 0 || b.settler == nil || b.idAppender == nil || b.tombs == nil {
		return b.appendSpill(ctx, payload)
	}
	id, err := b.idAppender.AppendID(ctx, payload)
	if err != nil {
		return b.spillError(ctx, payload, err)
	}
	b.respills.note(ctx, id, payload)
	b.spilled.Add(1)
	return nil
}
