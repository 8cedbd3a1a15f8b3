package syncbreaker

import "context"

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
