// Command daemon is a runnable tour of syncbreaker: a small daemon that
// ships "sync" messages from a watermill GoChannel to an HTTP server, with
// the server going down for a while in the middle and the daemon restarted
// while it sends the backlog.
//
//	go -C examples run ./daemon
//	go -C examples run ./daemon -router
//	go -C examples run ./daemon -outage 10s -reset 2s -n 150
//	go -C examples run ./daemon -metrics
//
// The default run is the shell-history daemon's own wiring: a default
// GoChannel shared with fresh traffic, no router, one processor loop that
// handles each message and settles republished ones with the breaker. With
// -router a watermill router and breaker.Middleware do the same.
//
// Watch the circuit open, payloads being spilled to the JSONL file, the
// half-open probe, the republish, the restart mid-drain on the same spill
// file, and a summary checked against what the server actually received.
// The exit status is 1 if any payload was lost. -settle 0 shows why the
// processor loop needs the settle: records then leave the file as soon as
// Publish returns, and the restart loses those still queued in the
// GoChannel. -metrics prints, at exit, the breaker's and the spill file's
// OpenTelemetry metrics (the syncbreakerotel module) through the SDK's
// stdout exporter.
//
// The example is a module of its own (examples/go.mod), so that the
// library's go.mod needs no OpenTelemetry.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sync"
	"time"
)

// options is everything a run can be tuned with; the flags set a few.
type options struct {
	n            int           // sync messages to send
	every        time.Duration // between two sync messages
	latency      time.Duration // how long the server takes to answer
	outageAt     time.Duration // when the server goes down, from the first message
	outage       time.Duration // how long it stays down
	reset        time.Duration // the breaker's ResetInterval
	threshold    int           // the breaker's FailureThreshold
	rate         float64       // the republisher's Rate, records per second
	settle       time.Duration // the republisher's SettleTimeout; 0 turns settling off
	restartAfter int           // restart once the server has this many payloads of the backlog; 0: no restart
	router       bool          // feed the handler with a router and breaker.Middleware
	file         string        // spill file; empty means one in a temporary directory
	wait         time.Duration // how long to wait for the restart point, and for delivery
	progress     time.Duration // between two progress lines
	metrics      bool          // print the OpenTelemetry metrics at exit
}

// defaultOptions end the fresh traffic while the server is still down, so
// the restart lands in the drain of the backlog, with nothing else in
// flight.
func defaultOptions() options {
	return options{
		n:            100,
		every:        80 * time.Millisecond,
		latency:      60 * time.Millisecond, // the drain goes at the handler's pace, about 15 a second
		outageAt:     time.Second,
		outage:       7500 * time.Millisecond,
		reset:        3 * time.Second,
		threshold:    3,
		rate:         50,
		settle:       10 * time.Second, // longer than a POST can take (the client gives up after 2s)
		restartAfter: 30,
		wait:         15 * time.Second,
		progress:     time.Second,
	}
}

func main() {
	opts := defaultOptions()
	flag.IntVar(&opts.n, "n", opts.n, "number of sync messages to send, one every 80ms")
	flag.DurationVar(&opts.outage, "outage", opts.outage, "how long the server answers 503, starting 1s in")
	flag.DurationVar(&opts.reset, "reset", opts.reset, "breaker reset interval: how long the circuit stays open before a half-open probe")
	flag.Float64Var(&opts.rate, "rate", opts.rate, "republish rate, records per second")
	flag.DurationVar(&opts.settle, "settle", opts.settle, "republisher settle timeout; 0 removes a record once Publish returns")
	flag.BoolVar(&opts.router, "router", false, "feed the handler with a watermill router and breaker.Middleware instead of the processor loop")
	flag.BoolVar(&opts.metrics, "metrics", false, "print the breaker's and the spill file's OpenTelemetry metrics at exit, through the SDK's stdout exporter")
	flag.StringVar(&opts.file, "file", "", "spill file (default: sync-pending.jsonl in a new temporary directory, removed at exit)")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if _, err := run(ctx, os.Stdout, opts); err != nil {
		fmt.Fprintln(os.Stderr, "daemon:", err)
		os.Exit(1)
	}
}

// errLost is returned by run when the server did not receive every payload.
var errLost = errors.New("payloads lost")

// validate rejects options a run cannot work with.
func (o options) validate() error {
	switch {
	case o.n <= 0:
		return errors.New("-n must be positive")
	case o.outage < 0:
		return errors.New("-outage must not be negative")
	case o.reset <= 0:
		return errors.New("-reset must be positive")
	case o.rate <= 0:
		return errors.New("-rate must be positive")
	case o.settle < 0:
		return errors.New("-settle must not be negative")
	case o.latency < 0 || o.restartAfter < 0:
		return errors.New("latency and restart point must not be negative")
	}
	return nil
}

// consumerName says what feeds the handler.
func (o options) consumerName() string {
	if o.router {
		return "router"
	}
	return "processor loop"
}

// console prints timestamped progress lines; it is safe for concurrent use.
type console struct {
	mu    sync.Mutex
	w     io.Writer
	start time.Time
}

func (c *console) printf(format string, args ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	fmt.Fprintf(c.w, "[%5.1fs] "+format+"\n", append([]any{time.Since(c.start).Seconds()}, args...)...)
}

// kib formats a byte count for humans.
func kib(n int64) string {
	if n < 1024 {
		return fmt.Sprintf("%d B", n)
	}
	return fmt.Sprintf("%.1f KiB", float64(n)/1024)
}
