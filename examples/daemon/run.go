package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"go.opentelemetry.io/otel/metric"

	"github.com/syncbreaker/syncbreaker"
)

// run starts the server and the daemon, sends opts.n sync messages through
// an outage, restarts the daemon on the same spill file once the server
// has taken opts.restartAfter payloads of the backlog, waits until the
// server has every payload (or opts.wait passes), shuts down in order and
// prints a summary. It returns errLost if a payload never reached the
// server.
func run(ctx context.Context, out io.Writer, opts options) (sum summary, err error) {
	if err := opts.validate(); err != nil {
		return sum, err
	}
	con := &console{w: out, start: time.Now()}
	sum.wiring = "processor loop over a default GoChannel"
	if opts.router {
		sum.wiring = "router with breaker.Middleware over a default GoChannel"
	}

	file, where := opts.file, opts.file
	if file == "" {
		dir, err := os.MkdirTemp("", "syncbreaker-example-")
		if err != nil {
			return sum, err
		}
		defer os.RemoveAll(dir)
		file = filepath.Join(dir, "sync-pending.jsonl")
		where = "sync-pending.jsonl in a temporary directory"
	}

	// The backend the daemon ships to, on loopback. It outlives the
	// daemon's restart.
	runID := newRunID()
	backend := newSyncServer(runID, opts.latency)
	backend.down.Store(opts.outageAt <= 0 && opts.outage > 0) // an outage from the very start
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return sum, err
	}
	httpServer := &http.Server{Handler: backend, ReadHeaderTimeout: 5 * time.Second}
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = httpServer.Serve(ln) // returns http.ErrServerClosed after Shutdown
	}()
	defer func() {
		_ = httpServer.Shutdown(context.Background())
		<-served
	}()
	url := "http://" + ln.Addr().String() + "/sync"
	client := &http.Client{Timeout: 2 * time.Second}
	defer client.CloseIdleConnections()

	var meters *metrics
	var mp metric.MeterProvider // nil: no metrics
	if opts.metrics {
		meters = newMetrics()
		mp = meters.provider
		defer func() { err = errors.Join(err, meters.provider.Shutdown(context.WithoutCancel(ctx))) }()
	}
	d, err := startDaemon(ctx, con, file, client, url, mp, opts)
	if err != nil {
		return sum, err
	}
	var current atomic.Pointer[daemon] // what the progress display reads
	current.Store(d)
	if d.leftover > 0 {
		con.printf("spill file holds %d payloads from an earlier run: RetryPending sends them now", d.leftover)
	}
	con.printf("%s; server %s, down from %v for %v; spill file %s", sum.wiring, url, opts.outageAt, opts.outage, where)
	con.printf("breaker: opens after %d failures, probes after %v; republish at most %g/s, settle timeout %v",
		opts.threshold, opts.reset, opts.rate, opts.settle)

	work, stopWork := context.WithCancel(ctx)
	var helpers sync.WaitGroup
	helpers.Go(func() { scheduleOutage(work, con, backend, opts) })
	helpers.Go(func() { reportProgress(work, con, opts.progress, &current, backend, opts.n) })

	lives := []*daemon{d}
	sum.sent, err = generate(ctx, con, d.bus, runID, opts)
	if err == nil && opts.restartAfter > 0 {
		// After the fresh traffic: the restart is about the backlog.
		if sum.drainedAtRestart, err = awaitRestartPoint(ctx, backend, opts); err == nil {
			con.printf("STOP mid-drain: the server has taken %d payloads of the backlog; stopping breaker, %s, bus and spill file in that order",
				sum.drainedAtRestart, opts.consumerName())
			d, err = restart(ctx, con, d, file, client, url, mp, opts)
		}
		if d != lives[0] {
			lives = append(lives, d)
			current.Store(d)
			sum.restarted, sum.pendingAtRestart = true, d.leftover
		}
	}
	if err == nil {
		err = awaitDelivery(ctx, con, backend, d.store, opts)
	}

	stopWork()
	helpers.Wait()
	for _, life := range lives {
		err = errors.Join(err, life.stop())
		sum.add(life)
	}
	if meters != nil {
		// Once the breaker has stopped: a replay adds to its counters when
		// it returns, which may be after the spill file is empty.
		err = errors.Join(err, meters.collect(context.WithoutCancel(ctx)))
	}

	st, got := d.store.Stats(), backend.counts(opts.n)
	sum.pending, sum.pendingBytes = st.PendingRecords, st.PendingBytes
	sum.received, sum.duplicates, sum.earlier, sum.rejected = got.unique, got.duplicates, got.earlier, got.rejected
	sum.lost = len(got.missing)
	printSummary(out, sum, file)
	if meters != nil {
		err = errors.Join(err, meters.print(context.WithoutCancel(ctx), out))
	}
	if err == nil && sum.lost > 0 {
		err = fmt.Errorf("%w: %d of %d never reached the server", errLost, sum.lost, sum.sent)
	}
	return sum, err
}

// awaitRestartPoint waits until the drain of the backlog is under way:
// the server has taken opts.restartAfter more payloads since the fresh
// traffic ended (or it has them all, or opts.wait passed). It returns how
// many it took.
func awaitRestartPoint(ctx context.Context, backend *syncServer, opts options) (int, error) {
	before := backend.counts(opts.n).unique
	drained := func() int { return backend.counts(opts.n).unique - before }
	err := waitUntil(ctx, opts.wait, func() bool {
		return drained() >= opts.restartAfter || len(backend.counts(opts.n).missing) == 0
	})
	return drained(), err
}

// restart stops d in order and starts the daemon again on the same spill
// file. It returns the daemon that runs now: the new one, or d if it could
// not start.
func restart(ctx context.Context, con *console, d *daemon, file string, client *http.Client, url string, mp metric.MeterProvider, opts options) (*daemon, error) {
	if err := d.stop(); err != nil {
		return d, err
	}
	if d.metrics != nil {
		// The next start reports the same series, as a restarted process
		// would: counters from zero.
		if err := d.metrics.Unregister(); err != nil {
			return d, err
		}
	}
	next, err := startDaemon(ctx, con, file, client, url, mp, opts)
	if err != nil {
		return d, err
	}
	con.printf("RESTARTED on the same spill file (%d records pending): RetryPending sends them now", next.leftover)
	return next, nil
}

// generate is the daemon's socket server: it publishes opts.n sync
// messages to the bus, one every opts.every, and returns how many it
// published.
func generate(ctx context.Context, con *console, bus message.Publisher, runID string, opts options) (int, error) {
	commands := []string{"git status", "go test ./...", "ls -la", "make build", "kubectl get pods", "vim main.go", "cd ..", "docker ps"}
	con.printf("sending %d sync messages, one every %v", opts.n, opts.every)
	tick := time.NewTicker(opts.every)
	defer tick.Stop()
	for seq := range opts.n {
		payload, err := json.Marshal(syncPayload{
			Run:      runID,
			Seq:      seq,
			Host:     "devbox",
			Commands: []string{commands[seq%len(commands)], commands[(seq*3+1)%len(commands)]},
		})
		if err != nil {
			return seq, err
		}
		if err := bus.Publish(syncTopic, message.NewMessage(watermill.NewUUID(), payload)); err != nil {
			return seq, fmt.Errorf("publish sync message %d: %w", seq, err)
		}
		if (seq+1)%50 == 0 || seq+1 == opts.n {
			con.printf("sent %d/%d sync messages", seq+1, opts.n)
		}
		select {
		case <-ctx.Done():
			return seq + 1, ctx.Err()
		case <-tick.C:
		}
	}
	return opts.n, nil
}

// scheduleOutage takes the server down at opts.outageAt and back up after
// opts.outage.
func scheduleOutage(ctx context.Context, con *console, backend *syncServer, opts options) {
	for _, step := range []struct {
		at   time.Duration
		down bool
		what string
	}{
		{opts.outageAt, true, "server DOWN: answering 503"},
		{opts.outageAt + opts.outage, false, "server UP again"},
	} {
		timer := time.NewTimer(time.Until(con.start.Add(step.at)))
		select {
		case <-ctx.Done():
			timer.Stop()
			backend.down.Store(false)
			return
		case <-timer.C:
		}
		backend.down.Store(step.down)
		con.printf("%s", step.what)
	}
}

// awaitDelivery waits until the server has every payload of this run and
// the spill file is empty, or opts.wait has passed.
func awaitDelivery(ctx context.Context, con *console, backend *syncServer, store *syncbreaker.JSONLStore, opts options) error {
	con.printf("waiting until the server has every payload and the spill file is empty (at most %v)", opts.wait)
	delivered := func() bool {
		return len(backend.counts(opts.n).missing) == 0 && store.Stats().PendingRecords == 0
	}
	err := waitUntil(ctx, opts.wait, delivered)
	switch {
	case err != nil:
		return err
	case delivered():
		con.printf("server has all %d payloads, spill file empty", opts.n)
	default:
		con.printf("gave up waiting after %v", opts.wait) // the summary reports what is missing
	}
	return nil
}

// waitUntil polls done until it is true or timeout passes; only ctx ending
// is an error.
func waitUntil(ctx context.Context, timeout time.Duration, done func() bool) error {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	poll := time.NewTicker(10 * time.Millisecond)
	defer poll.Stop()
	for !done() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline.C:
			return nil
		case <-poll.C:
		}
	}
	return nil
}

// newRunID returns a short random ID that tells this run's payloads apart.
func newRunID() string {
	var b [4]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return hex.EncodeToString(b[:])
}
