package syncbreaker

import (
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// The server's own "come back in d": a 429 or 503 with Retry-After. It is
// the best signal a breaker gets, so it opens the circuit at once, for the
// server's delay, instead of counting one failure of FailureThreshold.

// Tripper is the one method a handler that reads Retry-After itself needs
// besides CircuitBreaker. It is an interface of its own so CircuitBreaker
// stays the first user's drop-in, mock included.
type Tripper interface {
	// Trip opens the circuit now, for d (see Breaker.Trip).
	Trip(d time.Duration)
}

var _ Tripper = (*Breaker)(nil)

const (
	// minRetryAfter is the shortest open interval a server's delay gives:
	// "Retry-After: 0" or a date in the past must not become a hot loop.
	minRetryAfter = time.Second
	// DefaultMaxRetryAfter is used when Config.MaxRetryAfter is 0.
	DefaultMaxRetryAfter = 24 * time.Hour
)

// RetryAfter marks err as the server's "come back in d" (a 429 or 503
// with Retry-After; see ParseRetryAfter). Execute, Middleware and
// Breaker.Settle recognise it through any wrapping: the circuit opens at
// once for d (at least a second, at most Config.MaxRetryAfter), the payload
// is spilled and the message acked; a republished record refused with it
// counts no attempt. RetryAfter(nil, d) is nil.
func RetryAfter(err error, d time.Duration) error {
	if err == nil {
		return nil
	}
	return &retryAfterError{err: err, d: d}
}

// RetryAfterDelay returns the delay a RetryAfter error in err's chain
// carries.
func RetryAfterDelay(err error) (time.Duration, bool) {
	var r *retryAfterError
	if errors.As(err, &r) {
		return r.d, true
	}
	return 0, false
}

type retryAfterError struct {
	err error
	d   time.Duration
}

func (e *retryAfterError) Error() string {
	return fmt.Sprintf("%s (retry after %v)", e.err.Error(), e.d)
}

func (e *retryAfterError) Unwrap() error { return e.err }

// ParseRetryAfter reads a Retry-After header value in either of its forms,
// delta-seconds ("120") or an HTTP-date ("Wed, 21 Oct 2015 07:28:00 GMT"),
// as a delay from now. A date in the past gives 0 (Trip raises it to its
// floor). ok is false for an empty or malformed value.
func ParseRetryAfter(value string, now time.Time) (d time.Duration, ok bool) {
	value = strings.TrimSpace(value)
	if value == "" {
		return 0, false
	}
	if secs, err := strconv.ParseUint(value, 10, 64); err == nil {
		if secs > uint64(math.MaxInt64/int64(time.Second)) {
			return math.MaxInt64, true // absurdly far: Trip's cap applies
		}
		return time.Duration(secs) * time.Second, true
	}
	at, err := http.ParseTime(value)
	if err != nil {
		return 0, false
	}
	return max(at.Sub(now), 0), true
}

// Trip opens the circuit now, for d: the server said when to come back.
// It is what Execute, Middleware and Settle do with a RetryAfter error,
// for a handler that reads the header itself and drives the four-method
// interface. d is raised to a second and capped at Config.MaxRetryAfter.
//
// The server's delay replaces the breaker's own backoff for the current
// opening, longer or shorter (a handler that called RecordFailure first,
// opening the circuit with the grown interval, gets the server's delay);
// a later, shorter delay in the same opening does not shorten an earlier
// one. Closed or half-open, Trip opens the circuit (half-open, it ends the
// epoch and stops the running replay).
func (b *Breaker) Trip(d time.Duration) { b.trip(b.word.Load(), false, d) }

// trip is Trip for a call that started under the word seen. With sameGen a
// call that started before a transition may extend an open circuit but
// never re-opens one that has moved on to closed or half-open. It reports
// whether the circuit is open afterwards.
func (b *Breaker) trip(seen uint64, sameGen bool, d time.Duration) bool {
	d = min(max(d, minRetryAfter), b.maxRetryAfter)
	now := b.now()
	b.mu.Lock()
	for {
		w := b.word.Load()
		if stateOf(w) == StateOpen {
			until := now.Add(d)
			if !b.serverDelay || until.After(b.openUntil) {
				b.openUntil, b.openInterval, b.serverDelay = until, d, true
			}
			b.mu.Unlock()
			b.wakeRun() // the same opening, a new end: Run recomputes its timer
			return true
		}
		if sameGen && genOf(w) != genOf(seen) {
			b.mu.Unlock()
			return false
		}
		// Counts and admissions change a word that is not open without
		// b.mu: if one won, read it again.
		if b.transitionLocked(w, StateOpen, now, d) {
			b.mu.Unlock()
			b.afterTransition()
			return true
		}
	}
}
