package main

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"sync/atomic"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/pubsub/gochannel"
	"go.opentelemetry.io/otel/metric"

	"github.com/syncbreaker/syncbreaker"
	syncbreakerotel "github.com/syncbreaker/syncbreaker/otel"
)

// syncTopic is the topic the daemon's handler consumes; spilled payloads
// are republished to it, so they take the same path as fresh ones.
const syncTopic = "sync"

// daemon is the example daemon's wiring on one spill file: the message bus,
// the store, the breaker and what feeds the handler. run starts it, stops
// it in the middle of a drain and starts it again on the same file, as a
// restart of the real daemon would.
type daemon struct {
	bus         *gochannel.GoChannel
	store       *syncbreaker.JSONLStore
	republisher *countingRepublisher
	breaker     *syncbreaker.Breaker
	leftover    int64               // records pending in the spill file when it was opened
	metrics     metric.Registration // with -metrics: the breaker and the spill file observed (also once stopped); else nil

	stopBreaker context.CancelFunc
	breakerDone sync.WaitGroup // Run and the start-up RetryPending
	runErr      error
	consumer    consumer

	stopOnce sync.Once
	stopErr  error
}

// startDaemon opens the spill file and starts the daemon on it. The bus is
// a default GoChannel, which the socket server (generate) shares: its
// Publish returns before any handler has run, so the republisher settles.
// With a MeterProvider, the breaker and the spill file are observed until
// d.metrics is unregistered.
func startDaemon(ctx context.Context, con *console, file string, client *http.Client, url string, mp metric.MeterProvider, opts options) (_ *daemon, err error) {
	d := &daemon{bus: gochannel.NewGoChannel(gochannel.Config{}, watermill.NopLogger{})}
	defer func() {
		if err != nil {
			err = errors.Join(err, d.bus.Close())
		}
	}()

	// syncbreaker, wired in three steps: the spill file, the way back into
	// the bus, and the breaker over both.
	d.store, err = syncbreaker.OpenJSONLStore(file, syncbreaker.StoreConfig{})
	if err != nil {
		return nil, err // errors.Is(err, syncbreaker.ErrStoreLocked): another daemon runs
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, d.store.Close())
		}
	}()
	d.leftover = d.store.Stats().PendingRecords
	topicRepublisher, err := syncbreaker.NewRepublisher(d.bus, syncTopic, syncbreaker.RepublisherConfig{
		SettleTimeout: opts.settle, // a record leaves the file only once its message is handled
		Rate:          opts.rate,
	})
	if err != nil {
		return nil, err
	}
	d.republisher = &countingRepublisher{TopicRepublisher: topicRepublisher}
	store := d.store
	d.breaker, err = syncbreaker.New(syncbreaker.Config{
		FailureThreshold: opts.threshold,
		ResetInterval:    opts.reset,
		OnStateChange: func(c syncbreaker.StateChange) {
			reportStateChange(con, c, store.Stats())
		},
	}, d.store, d.republisher)
	if err != nil {
		return nil, err
	}
	if mp != nil {
		d.metrics, err = syncbreakerotel.Register(mp, d.breaker, d.store, syncbreakerotel.Config{Topic: topicRepublisher.Topic()})
		if err != nil {
			return nil, err
		}
		defer func() {
			if err != nil {
				err = errors.Join(err, d.metrics.Unregister())
			}
		}()
	}

	// The handler gets the breaker injected. Subscribe before the breaker
	// runs: a GoChannel drops what is published while nobody listens.
	handler := &syncHandler{breaker: d.breaker, client: client, url: url}
	d.consumer, err = consume(d.bus, d.breaker, handler, opts.router)
	if err != nil {
		return nil, err
	}

	breakerCtx, stopBreaker := context.WithCancel(ctx)
	d.stopBreaker = stopBreaker
	d.breakerDone.Go(func() { d.runErr = d.breaker.Run(breakerCtx) })
	d.breakerDone.Go(func() { retryAtStart(breakerCtx, con, d.breaker, d.leftover) })
	return d, nil
}

// retryAtStart sends what an earlier run left in the spill file now, not at
// Run's first tick. A replay that Run's tick started already, or the
// daemon stopping, is no error.
func retryAtStart(ctx context.Context, con *console, breaker *syncbreaker.Breaker, leftover int64) {
	res, err := breaker.RetryPending(ctx)
	switch {
	case leftover == 0, ctx.Err() != nil, errors.Is(err, syncbreaker.ErrReplayInProgress):
	case err != nil:
		con.printf("start-up retry stopped after %d republished, %d pending: %v", res.Republished, res.Remaining, err)
	default:
		con.printf("start-up retry done: %d republished, %d pending", res.Republished, res.Remaining)
	}
}

// stop shuts the daemon down in order, so that nothing in flight is lost:
// the breaker first (a republish waiting for its settle gives up, and its
// record stays in the file), then the router, which waits for its
// handlers, then the bus, which ends the processor loop's subscription,
// and the store last, once nothing can spill any more. A default GoChannel
// drops what it still queues when it closes: republished records are safe
// (they are still in the file), fresh messages are not, so run stops the
// daemon once the fresh traffic is over. Calling stop again returns the
// first result.
func (d *daemon) stop() error {
	d.stopOnce.Do(func() {
		d.stopBreaker()
		d.breakerDone.Wait()
		err := d.runErr
		if d.consumer.close != nil {
			err = errors.Join(err, d.consumer.close())
		}
		err = errors.Join(err, d.bus.Close())
		err = errors.Join(err, <-d.consumer.done)
		d.stopErr = errors.Join(err, d.store.Close())
	})
	return d.stopErr
}

// countingRepublisher counts records republished and settled as handled,
// for the progress display and the restart point. It embeds the
// *TopicRepublisher rather than the Republisher interface so that Settle
// and MaxInFlight are promoted: the breaker finds them through the
// Settler and InFlightLimiter interfaces, and a decorator hiding them
// would leave every republished message unsettled until SettleTimeout
// (New logs that; the summary prints what was found).
type countingRepublisher struct {
	*syncbreaker.TopicRepublisher
	n atomic.Int64
}

var (
	_ syncbreaker.Settler         = (*countingRepublisher)(nil)
	_ syncbreaker.InFlightLimiter = (*countingRepublisher)(nil)
)

func (c *countingRepublisher) Republish(ctx context.Context, rec syncbreaker.Record) error {
	err := c.TopicRepublisher.Republish(ctx, rec)
	if err == nil {
		c.n.Add(1)
	}
	return err
}
