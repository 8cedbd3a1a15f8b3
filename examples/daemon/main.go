// Command daemon is a runnable tour of syncbreaker: a small daemon that
// ships "sync" messages from a watermill GoChannel to an HTTP server, with
// the server going down for a while in the middle.
//
//	go run ./examples/daemon
//	go run ./examples/daemon -outage 10s -reset 2s -rate 20 -n 300
//
// Watch the circuit open, payloads being spilled to the JSONL file, the
// half-open probe, the republish, and a summary checked against what the
// server actually received. The exit status is 1 if any payload was lost.
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
	n         int           // sync messages to send
	every     time.Duration // between two sync messages
	outageAt  time.Duration // when the server goes down, from the first message
	outage    time.Duration // how long it stays down
	reset     time.Duration // the breaker's ResetInterval
	threshold int           // the breaker's FailureThreshold
	rate      float64       // the republisher's Rate, records per second
	file      string        // spill file; empty means one in a temporary directory
	wait      time.Duration // how long to wait for delivery after the last message
	progress  time.Duration // between two progress lines
}

func defaultOptions() options {
	return options{
		n:         200,
		every:     50 * time.Millisecond,
		outageAt:  2 * time.Second,
		outage:    5 * time.Second,
		reset:     3 * time.Second,
		threshold: 5,
		rate:      50,
		wait:      40 * time.Second,
		progress:  time.Second,
	}
}

func main() {
	opts := defaultOptions()
	flag.IntVar(&opts.n, "n", opts.n, "number of sync messages to send, one every 50ms")
	flag.DurationVar(&opts.outage, "outage", opts.outage, "how long the server answers 503, starting 2s in")
	flag.DurationVar(&opts.reset, "reset", opts.reset, "breaker reset interval: how long the circuit stays open before a half-open probe")
	flag.Float64Var(&opts.rate, "rate", opts.rate, "republish rate, records per second")
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
	}
	return nil
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
