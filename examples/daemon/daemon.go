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
	"github.com/ThreeDotsLabs/watermill/pubsub/gochannel"

	"github.com/syncbreaker/syncbreaker"
)

// syncTopic is the topic the daemon's handler consumes; spilled payloads
// are republished to it, so they take the same path as fresh ones.
const syncTopic = "sync"

// summary is what a run did, as counted by the daemon and by the server.
type summary struct {
	sent        int // sync messages published
	spilled     uint64
	republished uint64
	pending     int64 // records still in the spill file at exit
	received    int   // unique payloads of this run the server accepted
	duplicates  int   // payloads the server dropped by idempotency key
	earlier     int   // payloads from an earlier run's spill file
	rejected    int   // requests the server answered 503
	lost        int   // payloads of this run the server never accepted
}

// run starts the server and the daemon, sends opts.n sync messages through
// an outage, waits until the server has them all (or opts.wait passes), shuts
// down in order and prints a summary. It returns errLost if a payload never
// reached the server.
func run(ctx context.Context, out io.Writer, opts options) (sum summary, err error) {
	if err := opts.validate(); err != nil {
		return sum, err
	}
	con := &console{w: out, start: time.Now()}

	file := opts.file
	if file == "" {
		dir, err := os.MkdirTemp("", "syncbreaker-example-")
		if err != nil {
			return sum, err
		}
		defer os.RemoveAll(dir)
		file = filepath.Join(dir, "sync-pending.jsonl")
	}

	// The backend the daemon ships to, on loopback.
	runID := newRunID()
	backend := newSyncServer(runID)
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

	// The daemon's in-process message bus. BlockPublishUntilSubscriberAck
	// makes Publish wait until the handler has acked the message, so the
	// republisher never has more than one message in flight, and a
	// republished record is only removed from the spill file once the
	// handler has sent it or spilled it again.
	logger := watermill.NopLogger{}
	bus := gochannel.NewGoChannel(gochannel.Config{BlockPublishUntilSubscriberAck: true}, logger)
	defer bus.Close()

	// syncbreaker, wired in three steps: the spill file, the way back into
	// the bus, and the breaker over both.
	store, err := syncbreaker.OpenJSONLStore(file, syncbreaker.StoreConfig{})
	if err != nil {
		return sum, err
	}
	defer func() { err = errors.Join(err, store.Close()) }()
	if n := store.Stats().PendingRecords; n > 0 {
		con.printf("spill file holds %d payloads from an earlier run: they go out at the first retry", n)
	}
	topicRepublisher, err := syncbreaker.NewRepublisher(bus, syncTopic, syncbreaker.RepublisherConfig{Rate: opts.rate})
	if err != nil {
		return sum, err
	}
	republisher := &countingRepublisher{Republisher: topicRepublisher}
	breaker, err := syncbreaker.New(syncbreaker.Config{
		FailureThreshold: opts.threshold,
		ResetInterval:    opts.reset,
		OnStateChange: func(c syncbreaker.StateChange) {
			reportStateChange(con, c, store.Stats())
		},
	}, store, republisher)
	if err != nil {
		return sum, err
	}

	// The handler gets the breaker injected, and the router feeds it.
	client := &http.Client{Timeout: 2 * time.Second}
	defer client.CloseIdleConnections()
	handler := &syncHandler{breaker: breaker, client: client, url: url}
	router, err := message.NewRouter(message.RouterConfig{CloseTimeout: 10 * time.Second}, logger)
	if err != nil {
		return sum, err
	}
	router.AddConsumerHandler("sync-to-server", syncTopic, bus, handler.Handle)
	routerDone := make(chan error, 1)
	// Its own context: the router must keep handling republished messages
	// until the breaker has stopped, so it is closed explicitly below.
	go func() { routerDone <- router.Run(context.Background()) }()
	select {
	case <-router.Running():
	case err := <-routerDone:
		return sum, fmt.Errorf("router: %w", err)
	}

	breakerCtx, stopBreaker := context.WithCancel(ctx)
	breakerDone := make(chan error, 1)
	go func() { breakerDone <- breaker.Run(breakerCtx) }()

	con.printf("server %s, down from %v for %v; spill file %s", url, opts.outageAt, opts.outage, file)
	con.printf("breaker: opens after %d failures, probes after %v; republish at %g/s",
		opts.threshold, opts.reset, opts.rate)

	work, stopWork := context.WithCancel(ctx)
	var helpers sync.WaitGroup
	helpers.Go(func() { scheduleOutage(work, con, backend, opts) })
	helpers.Go(func() { reportProgress(work, con, opts.progress, store, breaker, republisher, backend, opts.n) })

	sum.sent, err = generate(ctx, con, bus, runID, opts)
	if err == nil {
		err = awaitDelivery(ctx, con, backend, opts)
	}

	// Shut down in order: the breaker first, while the router still runs,
	// so a republish in flight finishes through the handler; then the
	// router (waits for its handlers), then the bus. The store closes last.
	stopWork()
	helpers.Wait()
	stopBreaker()
	err = errors.Join(err, <-breakerDone)
	err = errors.Join(err, router.Close(), <-routerDone)

	st, bst, got := store.Stats(), breaker.Stats(), backend.counts(opts.n)
	sum.spilled, sum.republished, sum.pending = bst.Spilled, bst.Republished, st.PendingRecords
	sum.received, sum.duplicates, sum.earlier, sum.rejected = got.unique, got.duplicates, got.earlier, got.rejected
	sum.lost = len(got.missing)
	printSummary(out, sum, file, st)
	if err == nil && sum.lost > 0 {
		err = fmt.Errorf("%w: %d of %d never reached the server", errLost, sum.lost, sum.sent)
	}
	return sum, err
}

// generate publishes opts.n sync messages, one every opts.every, and returns
// how many it published.
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

// reportProgress prints the spill file, republish and server counters
// whenever they changed, at most every interval. The spill file's pending
// count drops when a replay round has settled a segment, not record by
// record.
func reportProgress(ctx context.Context, con *console, interval time.Duration, store *syncbreaker.JSONLStore, breaker *syncbreaker.Breaker, republisher *countingRepublisher, backend *syncServer, n int) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	var last [4]int64
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		st, bst, got := store.Stats(), breaker.Stats(), backend.counts(n)
		republished := republisher.n.Load()
		now := [4]int64{int64(bst.Spilled), republished, st.PendingRecords, int64(got.unique)}
		if now == last {
			continue
		}
		last = now
		con.printf("  circuit %-9s | spilled %4d | republished %4d | file: %4d pending, %9s | server has %d/%d",
			bst.State, bst.Spilled, republished, st.PendingRecords, kib(st.PendingBytes), got.unique, n)
	}
}

// countingRepublisher counts records as they are republished, for the
// progress display. Decorating the one-method Republisher interface is all
// it takes to add metrics or logging around the way back.
type countingRepublisher struct {
	syncbreaker.Republisher
	n atomic.Int64
}

func (c *countingRepublisher) Republish(ctx context.Context, rec syncbreaker.Record) error {
	err := c.Republisher.Republish(ctx, rec)
	if err == nil {
		c.n.Add(1)
	}
	return err
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

// awaitDelivery waits until the server has every payload of this run, or
// opts.wait has passed since the last message.
func awaitDelivery(ctx context.Context, con *console, backend *syncServer, opts options) error {
	con.printf("all sent; waiting for the server to have every payload (at most %v)", opts.wait)
	deadline := time.NewTimer(opts.wait)
	defer deadline.Stop()
	poll := time.NewTicker(50 * time.Millisecond)
	defer poll.Stop()
	for {
		if len(backend.counts(opts.n).missing) == 0 {
			con.printf("server has all %d payloads", opts.n)
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline.C:
			con.printf("gave up waiting after %v", opts.wait)
			return nil // the summary reports what is missing
		case <-poll.C:
		}
	}
}

// printSummary prints the run's figures, checked against the server's.
func printSummary(out io.Writer, s summary, file string, st syncbreaker.StoreStats) {
	fmt.Fprintf(out, "\nsummary\n")
	fmt.Fprintf(out, "  sent         %d sync messages\n", s.sent)
	fmt.Fprintf(out, "  spilled      %d payloads to %s\n", s.spilled, filepath.Base(file))
	fmt.Fprintf(out, "  republished  %d from the spill file (%d left pending, %s)\n", s.republished, s.pending, kib(st.PendingBytes))
	fmt.Fprintf(out, "  server       %d unique payloads received, %d duplicates dropped by idempotency key, %d requests refused while down\n",
		s.received, s.duplicates, s.rejected)
	if s.earlier > 0 {
		fmt.Fprintf(out, "               and %d payloads from an earlier run's spill file\n", s.earlier)
	}
	fmt.Fprintf(out, "  lost         %d\n", s.lost)
}

// newRunID returns a short random ID that tells this run's payloads apart.
func newRunID() string {
	var b [4]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return hex.EncodeToString(b[:])
}
