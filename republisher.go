package syncbreaker

import "context"

// Republisher sends a pending record back into the daemon's pipeline.
type Republisher interface {
	// Republish publishes rec; a nil error means it is delivered to the
	// publisher and may be removed from the store.
	Republish(ctx context.Context, rec Record) error
}
