package syncbreaker

import (
	"context"
	"time"
)

// Record is one spilled payload as the store holds it.
type Record struct {
	// ID is assigned at Append and stays the same for the record's whole
	// life, across replays, restarts and republishes, so consumers can use it
	// to drop duplicates.
	ID string
	// Payload is byte-exact what was appended.
	Payload []byte
	// EnqueuedAt is when Append accepted the payload.
	EnqueuedAt time.Time
	// Attempts counts failed republish attempts so far.
	Attempts int
}

// ReplayResult says what one Replay did.
type ReplayResult struct {
	Republished int // records for which fn returned nil, now removed
	Remaining   int // records still pending afterwards
	// Failed counts records fn failed that stay pending with Attempts+1.
	Failed int
	// Skipped counts records left untouched because ctx ended.
	Skipped int
	// DeadLettered counts records moved to the dead-letter file because
	// they reached the store's attempt limit.
	DeadLettered int
	// Quarantined counts damaged lines moved aside instead of replayed.
	Quarantined int
}

// PendingStore holds payloads that could not be sent, until they can.
//
// Implementations must be safe for concurrent use: Append may run while a
// Replay is in progress, and what it appends must not be lost.
type PendingStore interface {
	// Append stores payload durably (as the store's sync policy defines it)
	// and returns nil only once it is stored.
	Append(ctx context.Context, payload []byte) error
	// Replay calls fn for pending records, oldest first. Records for which fn
	// returns nil are removed; the others stay, in their original order, with
	// Attempts incremented. When ctx ends, Replay stops calling fn, leaves
	// every record it has not settled as it was (no attempt is counted for
	// them) and returns the result so far with ctx.Err(). Delivery is
	// at-least-once: after a crash a record may be replayed again, always
	// with the same ID. The record's Payload is valid only until fn
	// returns (a store may reuse its memory for the next record): fn must
	// copy it to keep it.
	Replay(ctx context.Context, fn func(context.Context, Record) error) (ReplayResult, error)
	// Close releases the store. It is safe to call more than once.
	Close() error
}
