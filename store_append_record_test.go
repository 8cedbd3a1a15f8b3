package syncbreaker

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// AppendRecord keeps an identity the caller already has (a message UUID),
// across a reopen, and replaces an ID the line format cannot hold rather
// than refusing the payload.
func TestStoreAppendRecordKeepsIdentity(t *testing.T) {
	spilledAt := time.Date(2026, 11, 1, 12, 0, 0, 123, time.UTC)
	tests := []struct {
		name     string
		in       Record
		keepID   bool
		attempts int
	}{
		{"uuid kept", Record{ID: "5f0c2b4e-8d1a-4c7e-9b3f-2a6d8e1f0c9b", Attempts: 2, EnqueuedAt: spilledAt}, true, 2},
		{"ulid kept", Record{ID: "01JDQ8ZK3Y7V9N2M4P6R8T0W1X"}, true, 0},
		{"empty ID generated", Record{}, false, 0},
		{"ID with a space replaced", Record{ID: "not an id"}, false, 0},
		{"ID with a quote replaced", Record{ID: `a"b`}, false, 0},
		{"over-long ID replaced", Record{ID: strings.Repeat("a", maxIDLen+1)}, false, 0},
		{"negative attempts clamped", Record{ID: "m-1", Attempts: -3}, true, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := storePath(t)
			s := openTestStore(t, path, StoreConfig{})
			tt.in.Payload = []byte(`{"cmd":"make"}`)
			require.NoError(t, s.AppendRecord(context.Background(), tt.in))
			require.NoError(t, s.Close())

			got := drainAll(t, openTestStore(t, path, StoreConfig{}))
			require.Len(t, got, 1)
			rec := got[0]
			assert.Equal(t, tt.in.Payload, rec.Payload)
			assert.Equal(t, tt.attempts, rec.Attempts)
			if tt.keepID {
				assert.Equal(t, tt.in.ID, rec.ID)
			} else {
				assert.NotEqual(t, tt.in.ID, rec.ID)
				assert.True(t, validID(rec.ID), "generated ID %q", rec.ID)
			}
			if !tt.in.EnqueuedAt.IsZero() {
				assert.True(t, tt.in.EnqueuedAt.Equal(rec.EnqueuedAt), "EnqueuedAt %v, want %v", rec.EnqueuedAt, tt.in.EnqueuedAt)
			} else {
				assert.False(t, rec.EnqueuedAt.IsZero())
			}
		})
	}
}
