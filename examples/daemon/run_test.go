package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// shortOptions is the default run in miniature: the fresh traffic ends
// while the server is down (at 250ms, up at 400ms), the circuit re-opens at
// its first probe (about 210ms) and closes at the second (about 510ms), and
// the daemon restarts after restartAfter records of the drain.
func shortOptions(t *testing.T) options {
	return options{
		n:            25,
		every:        10 * time.Millisecond,
		latency:      5 * time.Millisecond,
		outageAt:     30 * time.Millisecond,
		outage:       370 * time.Millisecond,
		reset:        150 * time.Millisecond,
		threshold:    3,
		rate:         1000, // faster than the handler: only the settle keeps the pace
		settle:       5 * time.Second,
		restartAfter: 8,
		file:         filepath.Join(t.TempDir(), "spill", "sync-pending.jsonl"),
		wait:         15 * time.Second,
		progress:     50 * time.Millisecond,
	}
}

// TestRunSurvivesOutageAndRestart runs the whole example with short
// durations, in both wirings: a real loopback server, the real breaker,
// store and default GoChannel, and a restart on the same spill file in the
// middle of the drain. Without SettleTimeout the restart loses the records
// still queued in the GoChannel (set settle to 0 to see it fail).
func TestRunSurvivesOutageAndRestart(t *testing.T) {
	for _, wiring := range []struct {
		name   string
		router bool
	}{{"processor loop", false}, {"router", true}} {
		t.Run(wiring.name, func(t *testing.T) {
			opts := shortOptions(t)
			opts.router = wiring.router
			var out bytes.Buffer
			sum, err := run(t.Context(), &out, opts)
			require.NoError(t, err, out.String())

			assert.Zero(t, sum.lost, out.String())
			assert.Equal(t, opts.n, sum.sent)
			assert.Equal(t, opts.n, sum.received, "the server must have every payload")
			assert.Positive(t, sum.spilled, "the outage must spill payloads")
			assert.True(t, sum.restarted)
			// Mid-drain: the server had some of the backlog, not all of it.
			assert.GreaterOrEqual(t, sum.drainedAtRestart, opts.restartAfter)
			assert.Positive(t, sum.pendingAtRestart, "the stop must leave records pending")
			assert.Equal(t, sum.spilled-sum.respilled, sum.republished, "every spilled payload is republished (a re-spill kept its record)")
			assert.Zero(t, sum.pending)
			assert.Positive(t, sum.rejected)
			assert.LessOrEqual(t, sum.duplicates, 2, "at most the record in flight at the stop is sent twice")
			for _, want := range []string{
				"server DOWN", "circuit OPEN", "circuit HALF-OPEN", "circuit CLOSED", "server UP",
				"STOP mid-drain", "RESTARTED on the same spill file", "duplicates", "lost         0",
			} {
				assert.Contains(t, out.String(), want)
			}
			assert.False(t, strings.Contains(out.String(), "make build"), "a payload's content was printed")
			assert.NotContains(t, out.String(), "metrics at exit", "metrics only with -metrics")
		})
	}
}

// TestRunPrintsMetrics: with -metrics the run ends, after the summary,
// with the stdout exporter's JSON of every instrument as the restarted
// daemon left them: closed, nothing pending, and the backlog it found
// republished.
func TestRunPrintsMetrics(t *testing.T) {
	opts := shortOptions(t)
	opts.metrics = true
	var out bytes.Buffer
	sum, err := run(t.Context(), &out, opts)
	require.NoError(t, err, out.String())

	summary, exported, ok := strings.Cut(out.String(), "\nmetrics at exit")
	require.True(t, ok, out.String())
	assert.Contains(t, summary, "lost         0")
	_, exported, _ = strings.Cut(exported, "\n")
	var rm struct {
		ScopeMetrics []struct {
			Scope   struct{ Name string }
			Metrics []struct {
				Name, Unit string
				Data       struct {
					DataPoints []struct {
						Attributes []struct {
							Key   string
							Value struct{ Value any }
						}
						Value float64
					}
				}
			}
		}
	}
	require.NoError(t, json.Unmarshal([]byte(exported), &rm), exported)
	require.Len(t, rm.ScopeMetrics, 1)
	assert.Equal(t, "github.com/syncbreaker/syncbreaker/otel", rm.ScopeMetrics[0].Scope.Name)
	values := map[string]float64{} // name, and the series' state or error.type
	for _, m := range rm.ScopeMetrics[0].Metrics {
		for _, p := range m.Data.DataPoints {
			key := m.Name
			for _, a := range p.Attributes {
				switch a.Key {
				case "syncbreaker.store.name":
					assert.Equal(t, "sync-pending.jsonl", a.Value.Value)
				case "messaging.destination.name":
					assert.Equal(t, syncTopic, a.Value.Value)
				default:
					key += " " + fmt.Sprint(a.Value.Value)
				}
			}
			values[key] = p.Value
		}
	}
	assert.Len(t, values, 22, "18 instruments, 3 series for the state and 3 for the rejections")
	assert.Equal(t, 1.0, values["syncbreaker.circuit.state closed"])
	assert.Equal(t, 0.0, values["syncbreaker.pending.count"])
	assert.Equal(t, 0.0, values["syncbreaker.pending.size"])
	assert.Equal(t, 0.0, values["syncbreaker.spilled.records"], "the outage was before the restart")
	assert.Equal(t, float64(sum.pendingAtRestart), values["syncbreaker.republished.records"])
	assert.GreaterOrEqual(t, values["syncbreaker.replays"], 1.0, "the start-up retry, and Run's since")
	assert.NotContains(t, out.String(), "make build", "a payload's content was printed")
}

// TestRunReportsLoss checks the summary is checked against the server: with
// an outage longer than the run, nothing arrives, run returns errLost, and
// every payload is still in the spill file after the restart.
func TestRunReportsLoss(t *testing.T) {
	opts := shortOptions(t)
	opts.n, opts.every = 20, 5*time.Millisecond
	opts.outageAt, opts.outage, opts.reset = 0, time.Hour, time.Hour
	opts.wait, opts.progress = 200*time.Millisecond, time.Hour
	var out bytes.Buffer
	sum, err := run(t.Context(), &out, opts)
	require.ErrorIs(t, err, errLost)
	assert.Equal(t, opts.n, sum.lost)
	assert.Zero(t, sum.received)
	assert.True(t, sum.restarted)
	assert.EqualValues(t, opts.n, sum.pendingAtRestart)
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
		{name: "negative settle", change: func(o *options) { o.settle = -time.Second }, wantErr: "-settle"},
		{name: "settle off", change: func(o *options) { o.settle = 0 }},
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
