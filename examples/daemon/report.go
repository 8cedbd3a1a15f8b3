package main

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/syncbreaker/syncbreaker"
)

// summary is what a run did, as counted by the daemon and by the server.
// Payload contents never appear in it, only counts and sizes.
type summary struct {
	wiring           string
	features         syncbreaker.Features // what the breaker found in the decorated republisher and the store
	sent             int                  // sync messages published
	spilled          uint64               // over every start of the daemon
	respilled        uint64               // of those, republished records spilled again: kept in place, their copy discarded
	republished      uint64               // records republished and removed from the spill file
	restarted        bool
	drainedAtRestart int   // payloads of the backlog the server had when the daemon stopped
	pendingAtRestart int64 // what the first start left in the spill file
	pending          int64 // records still in the spill file at exit
	pendingBytes     int64
	received         int // unique payloads of this run the server accepted
	duplicates       int // payloads the server dropped by idempotency key
	earlier          int // payloads from an earlier run's spill file
	rejected         int // requests the server answered 503
	lost             int // payloads of this run the server never accepted
}

// add counts what one start of the daemon did.
func (s *summary) add(d *daemon) {
	st := d.breaker.Stats()
	s.features = d.breaker.Features()
	s.spilled += st.Spilled
	s.respilled += st.Respilled
	s.republished += st.Republished
}

// reportProgress prints the spill file, republish and server counters
// whenever they changed, at most every interval, for the daemon running
// now (the counters of a restarted daemon start from zero). The spill
// file's pending count drops when a replay round has settled a segment,
// not record by record.
func reportProgress(ctx context.Context, con *console, interval time.Duration, current *atomic.Pointer[daemon], backend *syncServer, n int) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	var last [4]int64
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		d := current.Load()
		st, bst, got := d.store.Stats(), d.breaker.Stats(), backend.counts(n)
		republished := d.republisher.n.Load()
		now := [4]int64{int64(bst.Spilled), republished, st.PendingRecords, int64(got.unique)}
		if now == last {
			continue
		}
		last = now
		con.printf("  circuit %-9s | spilled %4d | republished %4d | file: %4d pending, %9s | server has %d/%d",
			bst.State, bst.Spilled, republished, st.PendingRecords, kib(st.PendingBytes), got.unique, n)
	}
}

// reportStateChange prints one circuit transition.
func reportStateChange(con *console, c syncbreaker.StateChange, st syncbreaker.StoreStats) {
	switch c.To {
	case syncbreaker.StateOpen:
		con.printf("circuit OPEN: spilling payloads to the file; half-open probe in %v", c.OpenInterval.Round(100*time.Millisecond))
	case syncbreaker.StateHalfOpen:
		con.printf("circuit HALF-OPEN: republishing %d pending payloads; the first answer decides", st.PendingRecords)
	case syncbreaker.StateClosed:
		con.printf("circuit CLOSED: server answers again")
	}
}

// printSummary prints the run's figures, checked against the server's.
func printSummary(out io.Writer, s summary, file string) {
	fmt.Fprintf(out, "\nsummary (%s)\n", s.wiring)
	f := s.features
	fmt.Fprintf(out, "  features     settle %s, delivery window %d, re-spill in place %s, late settles %s\n",
		onOff(f.Settle), f.Window, onOff(f.Respill), onOff(f.LateSettle))
	fmt.Fprintf(out, "  sent         %d sync messages\n", s.sent)
	fmt.Fprintf(out, "  spilled      %d payloads to %s\n", s.spilled, filepath.Base(file))
	if s.respilled > 0 {
		fmt.Fprintf(out, "               %d of them republished records spilled again, kept in place under their IDs\n", s.respilled)
	}
	if s.restarted {
		fmt.Fprintf(out, "  restart      stopped once the server had %d payloads of the backlog; the restarted daemon found %d pending\n",
			s.drainedAtRestart, s.pendingAtRestart)
	}
	fmt.Fprintf(out, "  republished  %d from the spill file (%d left pending, %s)\n", s.republished, s.pending, kib(s.pendingBytes))
	fmt.Fprintf(out, "  server       %d unique payloads received, %d requests refused while down\n", s.received, s.rejected)
	if s.earlier > 0 {
		fmt.Fprintf(out, "               and %d payloads from an earlier run's spill file\n", s.earlier)
	}
	fmt.Fprintf(out, "  duplicates   %d, dropped by the server's idempotency key (the message UUID)\n", s.duplicates)
	fmt.Fprintf(out, "  lost         %d\n", s.lost)
}

func onOff(on bool) string {
	if on {
		return "on"
	}
	return "off"
}
