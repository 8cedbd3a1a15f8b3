// Package jsonl is the engine of syncbreaker's durable spill store: the line
// codec, the active file and sealed segments, replay, repair at open,
// group commit, dead letters, and a read-only scan for tools. The root
// package's JSONLStore is its public face.
package jsonl

import (
	"errors"
	"time"
)

// Record is one spilled payload as the store holds it; the root package's
// Record has the same fields, so one converts to the other.
type Record struct {
	// ID is assigned at Append and kept for the record's whole life.
	ID string
	// Payload is byte-exact what was appended.
	Payload []byte
	// EnqueuedAt is when Append accepted the payload.
	EnqueuedAt time.Time
	// Attempts counts failed deliveries so far.
	Attempts int
	// MessageID is the UUID of the message whose payload this is, when
	// the appender gave one (see Store.AppendMessage); empty otherwise.
	MessageID string
}

// ReplayResult says what one Replay did; the root package's ReplayResult
// has the same fields.
type ReplayResult struct {
	Republished int // records for which fn returned nil, or settled late (see SettleLate), now removed
	Remaining   int // records still pending afterwards
	// Failed counts records fn failed that stay pending with Attempts+1.
	Failed int
	// Skipped counts records left exactly as they were, with no attempt
	// counted: ctx ended before fn settled them, or fn's error wraps
	// ErrNotAttempted.
	Skipped int
	// DeadLettered counts records moved to the dead-letter file: fn's
	// error wrapped ErrDeadLetter, or they reached MaxAttempts.
	DeadLettered int
	// Quarantined counts damaged lines moved aside instead of replayed.
	Quarantined int
	// Discarded counts records removed without delivery because they
	// were copies of another record (see Store.Discard).
	Discarded int
}

// What a Replay callback's error does to its record, beyond nil (removed)
// and any other error (kept in place with Attempts+1).
var (
	// ErrNotAttempted keeps the record exactly as it was.
	ErrNotAttempted = errors.New("syncbreaker: record not attempted")
	// ErrDeadLetter moves the record to the dead-letter file at once.
	ErrDeadLetter = errors.New("syncbreaker: record refused for good")
)

// WithPayload marks a callback's verdict err with the bytes the record is
// to be kept with: the handler spilled the delivered record again, changed
// (re-marshalled, shorter, longer or empty), and the record keeps its ID
// and its place with those bytes. err still decides the rest (an attempt
// or not). A nil err is taken as ErrNotAttempted: the record is kept.
func WithPayload(err error, payload []byte) error {
	if err == nil {
		err = ErrNotAttempted
	}
	return &replacementError{err: err, payload: payload}
}

type replacementError struct {
	err     error
	payload []byte
}

func (e *replacementError) Error() string { return e.err.Error() }
func (e *replacementError) Unwrap() error { return e.err }

// replacementOf returns the payload WithPayload marked err with.
func replacementOf(err error) ([]byte, bool) {
	var r *replacementError
	if errors.As(err, &r) {
		return r.payload, true
	}
	return nil, false
}
