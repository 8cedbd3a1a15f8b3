package e2e_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/syncbreaker/syncbreaker"
)

// TestRepublishIsDedupedByJetStream republishes records twice, as a crash
// between publishing and settling a record would, and checks that JetStream
// keeps one message per record because its UUID is the record ID.
func TestRepublishIsDedupedByJetStream(t *testing.T) {
	url := startJetStream(t)
	pub := newPublisher(t, url)
	r, err := syncbreaker.NewRepublisher(pub, syncTopic, syncbreaker.RepublisherConfig{})
	require.NoError(t, err)

	const records = 20
	for range 2 {
		for i := range records {
			rec := syncbreaker.Record{
				ID:         fmt.Sprintf("rec-%03d", i),
				Payload:    []byte(fmt.Sprintf(`{"cmd":"make test %d"}`, i)),
				EnqueuedAt: time.Now(),
			}
			require.NoError(t, r.Republish(t.Context(), rec))
		}
	}
	assert.EqualValues(t, records, streamMessages(t, url))
}
