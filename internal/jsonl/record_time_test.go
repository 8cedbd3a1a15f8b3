package jsonl

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A record is delivered whatever the clock says when it is appended: a
// time the format cannot hold (RFC 3339 has four-digit years) is clamped
// to the nearest it can, and Append never fails for it.
func TestAnyClockIsDelivered(t *testing.T) {
	for _, tc := range []struct {
		name string
		now  time.Time
		want time.Time
	}{
		{"year 0", time.Date(0, 6, 1, 0, 0, 0, 0, time.UTC), time.Date(0, 6, 1, 0, 0, 0, 0, time.UTC)},
		{"year -1", time.Date(-1, 6, 1, 0, 0, 0, 0, time.UTC), minRecordTime},
		{"year 10000", time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), maxRecordTime},
		{"far future", time.Unix(1<<60, 0), maxRecordTime},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := storePath(t)
			s, err := Open(path, Config{now: func() time.Time { return tc.now }})
			require.NoError(t, err)
			appendAll(t, s, numbered(2)...)
			require.NoError(t, s.Close())

			s = openTestStore(t, path, Config{})
			assert.Empty(t, s.RepairReport().Files, "nothing quarantined")
			got := drainAll(t, s)
			require.Equal(t, numbered(2), payloadsOf(got))
			for _, r := range got {
				assert.True(t, tc.want.Equal(r.EnqueuedAt), "EnqueuedAt %v, want %v", r.EnqueuedAt, tc.want)
			}
		})
	}
}
