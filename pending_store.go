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
	// MessageID is the UUID of the fresh message whose payload this is,
	// when Breaker.Settle or Middleware spilled a failed send from a store
	// that keeps it (a MessageAppender, as JSONLStore is); empty otherwise.
	// A TopicRepublisher sends it as MetadataMessageUUID, so a server's
	// idempotency key can stay the same from the first try to the last
	// (the republished message's UUID stays the record ID).
	MessageID string
}

// ReplayResult says what one Replay did. A record is removed once a
// durable checkpoint or commit says so, and only then counted: a Replay
// that fails (an I/O error) reports in Republished, DeadLettered,
// Quarantined and Discarded only what its checkpoints removed, however
// many records fn accepted, with every other record left as it was
// (Skipped, Failed 0) and Remaining what is really pending.
type ReplayResult struct {
	Republished int // records for which fn returned nil, or handled late (see TopicRepublisher.Settle), now removed
	Remaining   int // records still pending afterwards
	// Failed counts records fn failed that stay pending with Attempts+1.
	Failed int
	// Skipped counts records left exactly as they were, with no attempt
	// counted: ctx ended before fn settled them, or fn's error said the
	// record was not tried (ErrNotAttempted, ErrOpen).
	Skipped int
	// DeadLettered counts records moved to the dead-letter file because
	// they reached the store's attempt limit.
	DeadLettered int
	// Quarantined counts damaged lines moved aside instead of replayed.
	Quarantined int
	// Discarded counts records removed without delivery because they
	// were copies of another record: a handler spilled a republished
	// message again and the record kept the new bytes in its own place
	// (see Breaker.SaveForRetry).
	Discarded int
}

// PendingStore holds payloads that could not be sent, until they can.
//
// Implementations must be safe for concurrent use: Append may run while a
// Replay is in progress, and what it appends must not be lost.
type PendingStore interface {
	// Append stores payload durably (as the store's sync policy defines it)
	// and returns nil only once it is stored.
	Append(ctx context.Context, payload []byte) error
	// Replay calls fn for pending records, oldest first, one at a time.
	// fn's error decides what happens to each record:
	//
	//   - nil: the record is delivered and removed.
	//   - an error marked with Permanent: the record can never be
	//     delivered; it moves to the store's dead letters at once (a store
	//     without them keeps it with Attempts+1).
	//   - an error wrapping ErrNotAttempted or ErrOpen, or any error once
	//     ctx has ended: nothing says the record failed (a settle timeout,
	//     an open circuit, a stop); it stays exactly as it was.
	//   - any other error: a failed delivery; the record stays in its
	//     original place with Attempts+1, and a store with an attempt
	//     limit dead-letters it once the limit is reached.
	//
	// When ctx ends, Replay stops calling fn, leaves every record it has
	// not settled as it was and returns the result so far with ctx.Err().
	// Delivery is at-least-once: after a crash a record may be replayed
	// again, always with the same ID. The record belongs to fn: it may keep
	// rec.Payload, send it on a channel or hand it to an asynchronous
	// publisher; the store never touches that memory again.
	Replay(ctx context.Context, fn func(context.Context, Record) error) (ReplayResult, error)
	// Close releases the store. It is safe to call more than once.
	Close() error
}
