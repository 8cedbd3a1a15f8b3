package syncbreaker_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/syncbreaker/syncbreaker"
)

// Measurements for BENCHMARKS.md (section "Adaptive pace"), in the
// synctest bubble's time: they log their figures and assert only that
// they ran. Skipped under -short.
//
//	go test -run 'TestMeasureAdaptive' -v -count=1 .

// simFixedIssue is the issue's republisher with the pace fixed, and
// simFixedDefault the zero RepublisherConfig's pace (100/s, one in
// flight) fixed.
var (
	simFixedIssue   = syncbreaker.RepublisherConfig{Rate: 2000, Burst: 50, MaxInFlight: 8, SettleTimeout: 10 * time.Second, FixedPace: true}
	simFixedDefault = syncbreaker.RepublisherConfig{SettleTimeout: 10 * time.Second, FixedPace: true}
)

// TestMeasureAdaptiveDrain: 10,000 records against servers of 20, 50 and
// 200 requests a second (503 beyond), no fresh traffic, 2 ms a request,
// FailureThreshold 10 and ResetInterval 1 h (the defaults): how long the
// drain takes, the refusals and the openings, fixed against adaptive.
func TestMeasureAdaptiveDrain(t *testing.T) {
	if testing.Short() {
		t.Skip("a measurement")
	}
	const backlog = 10_000
	pacings := []struct {
		name string
		rep  syncbreaker.RepublisherConfig
	}{
		{"fixed, Rate 2000, MaxInFlight 8", simFixedIssue},
		{"fixed, Rate 100, MaxInFlight 1 (the defaults)", simFixedDefault},
		{"adaptive, ceilings Rate 2000, MaxInFlight 8", simIssueConfig},
	}
	t.Logf("| server | pacing | drained in | ideal | refusals | circuit opens |")
	t.Logf("|---|---|---|---|---|---|")
	for _, capacity := range []float64{20, 50, 200} {
		for _, p := range pacings {
			synctest.Test(t, func(t *testing.T) {
				d := startSimDaemon(t, simConfig{capacity: capacity, latency: 2 * time.Millisecond, backlog: backlog, rep: p.rep})
				took, ok := d.drain(24 * time.Hour)
				st := d.breaker.Stats()
				d.stop()
				res := took.Round(100 * time.Millisecond).String()
				if !ok {
					res = fmt.Sprintf("not in 24 h (%d of %d delivered)", d.delivered(), backlog)
				}
				t.Logf("| %g/s | %s | %s | %v | %d | %d |", capacity, p.name, res,
					time.Duration(backlog/capacity)*time.Second, d.server.refused, st.Opens)
			})
		}
	}
}

// TestMeasureAdaptiveFleet: 1,000 breakers in one process against one
// server that takes 1,000 requests a second (503 beyond) and 20 ms a
// request. Each has a backlog of 100 records, its own bus and processor
// loop, ResetInterval 1 min (grown open intervals cap at 8 min) and the
// default FailureThreshold 10. The server is down from the start; breaker
// i records its 10 failures at i x 60 ms, so all open within one minute
// of each other; the server is back at 10 min. Figures: the peak
// requests a second the server got in the first ten minutes after it was
// back, the refusals and re-openings, and when the fleet had drained.
func TestMeasureAdaptiveFleet(t *testing.T) {
	if testing.Short() {
		t.Skip("a measurement")
	}
	t.Logf("| pacing | peak requests/s (10 min after back) | refusals | re-opens after back | fleet drained after back |")
	t.Logf("|---|---|---|---|---|")
	for _, p := range []struct {
		name string
		rep  syncbreaker.RepublisherConfig
	}{
		{"fixed, Rate 100, MaxInFlight 1 (the defaults)", simFixedDefault},
		{"adaptive, ceiling Rate 100 (the default)", syncbreaker.RepublisherConfig{SettleTimeout: 10 * time.Second}},
	} {
		synctest.Test(t, func(t *testing.T) {
			peak, refused, reopens, drained := runFleet(t, p.rep)
			t.Logf("| %s | %d | %d | %d | %s |", p.name, peak, refused, reopens, drained)
		})
	}
}

func runFleet(t *testing.T, rep syncbreaker.RepublisherConfig) (peak, refused int, reopens uint64, drained string) {
	const (
		fleet, backlog = 1000, 100
		back           = 10 * time.Minute
	)
	srv := newSimServer(1000, 20*time.Millisecond)
	srv.down.Store(true)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	breakers := make([]*syncbreaker.Breaker, fleet)
	buses := make([]*chanBus, fleet)
	seeded := map[string]bool{}
	for i := range fleet {
		store := &memStore{}
		for j := range backlog {
			p := fmt.Sprintf(`{"seeded":%d,"r":%d}`, i, j)
			seeded[p] = true
			if err := store.Append(ctx, []byte(p)); err != nil {
				t.Fatal(err)
			}
		}
		bus := newChanBus(16)
		r, err := syncbreaker.NewRepublisher(bus, testTopic, rep)
		if err != nil {
			t.Fatal(err)
		}
		b, err := syncbreaker.New(syncbreaker.Config{ResetInterval: time.Minute}, store, r)
		if err != nil {
			t.Fatal(err)
		}
		breakers[i], buses[i] = b, bus
		d := &simDaemon{breaker: b, server: srv}
		wg.Go(func() {
			for msg := range bus.ch {
				err := d.handle(msg)
				if b.Settle(msg, err) || err == nil {
					msg.Ack()
				} else {
					msg.Nack()
				}
			}
		})
		wg.Go(func() {
			time.Sleep(time.Duration(i) * 60 * time.Millisecond)
			for range 10 {
				b.RecordFailure() // its sends meet the outage
			}
			_ = b.Run(ctx)
		})
	}
	time.Sleep(back)
	srv.down.Store(false)
	var opensBack uint64
	for _, b := range breakers {
		opensBack += b.Stats().Opens
	}
	refusedBack := srv.refusedCount()
	start := time.Now()
	drained = "not within 2 h"
	for time.Since(start) < 2*time.Hour {
		srv.mu.Lock()
		n := srv.seeded
		srv.mu.Unlock()
		if n == len(seeded) {
			drained = time.Since(start).Round(time.Second).String()
			break
		}
		time.Sleep(time.Second)
	}
	for _, b := range breakers {
		reopens += b.Stats().Opens
	}
	reopens -= opensBack
	secs := int64(back / time.Second)
	peak = srv.peak(secs, secs+600)
	refused = srv.refusedCount() - refusedBack
	cancel()
	synctest.Wait()
	for _, bus := range buses {
		_ = bus.Close()
	}
	wg.Wait()
	return peak, refused, reopens, drained
}
