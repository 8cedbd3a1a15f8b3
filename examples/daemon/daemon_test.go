package main

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestRunSurvivesOutage runs the whole example with short durations: a
// real loopback server, the real breaker, store and GoChannel. It takes
// about a second.
func TestRunSurvivesOutage(t *testing.T) {
	opts := options{
		n:         60,
		every:     10 * time.Millisecond,
		outageAt:  100 * time.Millisecond,
		outage:    300 * time.Millisecond,
		reset:     150 * time.Millisecond,
		threshold: 3,
		rate:      500,
		file:      filepath.Join(t.TempDir(), "spill", "sync-pending.jsonl"),
		wait:      15 * time.Second,
		progress:  50 * time.Millisecond,
	}
	var out bytes.Buffer
	sum, err := run(t.Context(), &out, opts)
	require.NoError(t, err, out.String())

	assert.Equal(t, opts.n, sum.sent)
	assert.Equal(t, opts.n, sum.received, "the server must have every payload")
	assert.Zero(t, sum.lost)
	assert.Positive(t, sum.spilled, "the outage must spill payloads")
	assert.Equal(t, sum.spilled, sum.republished, "every spilled payload is republished")
	assert.Zero(t, sum.pending)
	assert.Positive(t, sum.rejected)
	for _, want := range []string{"server DOWN", "circuit OPEN", "circuit HALF-OPEN", "circuit CLOSED", "server UP", "lost         0"} {
		assert.Contains(t, out.String(), want)
	}
	assert.False(t, strings.Contains(out.String(), "make build"), "a payload's content was printed")
}

// TestRunReportsLoss checks the summary is checked against the server: with
// an outage longer than the run, nothing arrives, run returns errLost and
// every payload is still in the spill file.
func TestRunReportsLoss(t *testing.T) {
	opts := options{
		n:         20,
		every:     5 * time.Millisecond,
		outage:    time.Hour,
		reset:     time.Hour,
		threshold: 3,
		rate:      100,
		file:      filepath.Join(t.TempDir(), "sync-pending.jsonl"),
		wait:      200 * time.Millisecond,
		progress:  time.Hour,
	}
	var out bytes.Buffer
	sum, err := run(t.Context(), &out, opts)
	require.ErrorIs(t, err, errLost)
	assert.Equal(t, opts.n, sum.lost)
	assert.Zero(t, sum.received)
	assert.EqualValues(t, opts.n, sum.pending, "every payload must wait in the spill file")
	assert.Contains(t, out.String(), "lost         20")
}

func TestOptionsValidate(t *testing.T) {
	tests := []struct {
		name    string
		change  func(*options)
		wantErr string
	}{
		{name: "defaults", change: func(*options) {}},
		{name: "no messages", change: func(o *options) { o.n = 0 }, wantErr: "-n"},
		{name: "negative outage", change: func(o *options) { o.outage = -time.Second }, wantErr: "-outage"},
		{name: "zero reset", change: func(o *options) { o.reset = 0 }, wantErr: "-reset"},
		{name: "zero rate", change: func(o *options) { o.rate = 0 }, wantErr: "-rate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := defaultOptions()
			tt.change(&o)
			err := o.validate()
			if tt.wantErr == "" {
				assert.NoError(t, err)
				return
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.wantErr)
		})
	}
}
