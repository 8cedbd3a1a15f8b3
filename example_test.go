package syncbreaker_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/gochannel"

	"github.com/syncbreaker/syncbreaker"
)

// The shell-history daemon's wiring: a default GoChannel shared with fresh
// traffic, no router, and one processor loop that handles each message,
// settles it with the breaker and acks it. With SettleTimeout a republished
// record leaves the spill file only once the loop has settled its message,
// so a stop or a crash in the middle of a drain loses nothing.
func Example_processorLoop() {
	dir, err := os.MkdirTemp("", "syncbreaker-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	store, err := syncbreaker.OpenJSONLStore(filepath.Join(dir, "sync-pending.jsonl"), syncbreaker.StoreConfig{})
	if err != nil {
		log.Fatal(err)
	}
	bus := gochannel.NewGoChannel(gochannel.Config{}, watermill.NopLogger{}) // Publish returns before any handler runs
	republisher, err := syncbreaker.NewRepublisher(bus, "sync", syncbreaker.RepublisherConfig{
		SettleTimeout: time.Minute, // longer than the handler can take
	})
	if err != nil {
		log.Fatal(err)
	}
	breaker, err := syncbreaker.New(syncbreaker.Config{FailureThreshold: 1}, store, republisher)
	if err != nil {
		log.Fatal(err)
	}

	// The handler drives the breaker through the four-method
	// CircuitBreaker interface; the loop holds the *Breaker for Settle.
	var server exampleServer // down until told otherwise
	handle := syncHandler(breaker, server.post)
	// Subscribe first: a GoChannel drops what nobody listens to.
	messages, err := bus.Subscribe(context.Background(), "sync")
	if err != nil {
		log.Fatal(err)
	}
	loopDone := make(chan struct{})
	go func() {
		defer close(loopDone)
		for msg := range messages {
			err := handle(msg) // a republished record it spills again stays pending in its place
			if breaker.Settle(msg, err) || err == nil {
				msg.Ack()
			} else {
				msg.Nack()
			}
		}
	}()

	publishWhileDown(bus, breaker, "ls", "make", "git status")
	fmt.Println("state:", breaker.State(), "pending:", store.Stats().PendingRecords)

	// The server is back. A daemon lets breaker.Run probe it after
	// ResetInterval; each republished record waits until the loop settles it.
	server.up.Store(true)
	breaker.Reset()
	res, err := breaker.RetryPending(context.Background())
	fmt.Printf("republished=%d remaining=%d err=%v\n", res.Republished, res.Remaining, err)
	fmt.Println("server received:", server.received.Load(), "pending:", store.Stats().PendingRecords)

	_ = bus.Close() // ends the subscription, so the loop returns
	<-loopDone
	_ = store.Close()
	// Output:
	// state: open pending: 3
	// republished=3 remaining=0 err=<nil>
	// server received: 3 pending: 0
}

// With a watermill router, breaker.Middleware does what the processor loop
// does by hand: it spills while the circuit is open and settles
// republished messages, so the handler only sends.
func Example_router() {
	dir, err := os.MkdirTemp("", "syncbreaker-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	store, err := syncbreaker.OpenJSONLStore(filepath.Join(dir, "sync-pending.jsonl"), syncbreaker.StoreConfig{})
	if err != nil {
		log.Fatal(err)
	}
	bus := gochannel.NewGoChannel(gochannel.Config{}, watermill.NopLogger{})
	republisher, err := syncbreaker.NewRepublisher(bus, "sync", syncbreaker.RepublisherConfig{SettleTimeout: time.Minute})
	if err != nil {
		log.Fatal(err)
	}
	breaker, err := syncbreaker.New(syncbreaker.Config{FailureThreshold: 1}, store, republisher)
	if err != nil {
		log.Fatal(err)
	}

	var server exampleServer
	router, err := message.NewRouter(message.RouterConfig{}, watermill.NopLogger{})
	if err != nil {
		log.Fatal(err)
	}
	router.AddMiddleware(breaker.Middleware)
	router.AddConsumerHandler("sync", "sync", bus, func(msg *message.Message) error {
		return server.post(msg.Context(), msg.Payload)
	})
	go func() { _ = router.Run(context.Background()) }()
	<-router.Running() // a GoChannel drops what nobody listens to

	publishWhileDown(bus, breaker, "ls", "make", "git status")
	fmt.Println("state:", breaker.State(), "pending:", store.Stats().PendingRecords)

	// The server is back; each republished record waits until the
	// middleware settles it.
	server.up.Store(true)
	breaker.Reset()
	res, err := breaker.RetryPending(context.Background())
	fmt.Printf("republished=%d remaining=%d err=%v\n", res.Republished, res.Remaining, err)
	fmt.Println("server received:", server.received.Load(), "pending:", store.Stats().PendingRecords)

	_ = router.Close() // waits for its handlers
	_ = bus.Close()
	_ = store.Close()
	// Output:
	// state: open pending: 3
	// republished=3 remaining=0 err=<nil>
	// server received: 3 pending: 0
}

// exampleServer stands for the daemon's HTTP API.
type exampleServer struct {
	up       atomic.Bool
	received atomic.Int64
}

func (s *exampleServer) post(context.Context, []byte) error {
	if !s.up.Load() {
		return errors.New("503 service unavailable")
	}
	s.received.Add(1)
	return nil
}

// publishWhileDown publishes fresh sync messages, as the daemon's socket
// server does, and waits until the breaker has spilled them all: the
// messages are handled on another goroutine.
func publishWhileDown(bus message.Publisher, breaker *syncbreaker.Breaker, cmds ...string) {
	for _, cmd := range cmds {
		if err := bus.Publish("sync", message.NewMessage(watermill.NewUUID(), []byte(`{"cmd":"`+cmd+`"}`))); err != nil {
			log.Fatal(err)
		}
	}
	for breaker.Stats().Spilled < uint64(len(cmds)) {
		time.Sleep(time.Millisecond)
	}
}

// Execute sends while the server answers; once the circuit opens the
// payload is spilled instead and the caller is told it was handled.
func ExampleBreaker_Execute() {
	store := &memStore{}
	breaker, err := syncbreaker.New(syncbreaker.Config{FailureThreshold: 2}, store, &recordingRepublisher{})
	if err != nil {
		log.Fatal(err)
	}
	serverDown := func(context.Context) error { return errors.New("503") }

	for _, payload := range []string{"ls", "cd", "make"} {
		err := breaker.Execute(context.Background(), []byte(payload), serverDown)
		fmt.Printf("%s: err=%v state=%v\n", payload, err, breaker.State())
	}
	fmt.Println("pending:", len(store.records()))
	// Output:
	// ls: err=503 state=closed
	// cd: err=<nil> state=open
	// make: err=<nil> state=open
	// pending: 2
}

// A handler written against the CircuitBreaker interface, as the
// shell-history daemon's sync handler is.
func Example_circuitBreakerInterface() {
	store := &memStore{}
	breaker, err := syncbreaker.New(syncbreaker.Config{FailureThreshold: 1}, store, &recordingRepublisher{})
	if err != nil {
		log.Fatal(err)
	}
	var serverUp bool
	handle := syncHandler(breaker, func(context.Context, []byte) error {
		if serverUp {
			return nil
		}
		return errors.New("connection refused")
	})

	fmt.Println(handle(message.NewMessage("1", []byte(`{"cmd":"ls"}`))), breaker.IsOpen())
	fmt.Println(handle(message.NewMessage("2", []byte(`{"cmd":"pwd"}`))), breaker.IsOpen())
	fmt.Println("spilled:", breaker.Stats().Spilled)
	// Output:
	// connection refused true
	// <nil> true
	// spilled: 1
}

func syncHandler(cb syncbreaker.CircuitBreaker, post func(context.Context, []byte) error) message.NoPublishHandlerFunc {
	return func(msg *message.Message) error {
		if cb.IsOpen() {
			return cb.SaveForRetry(msg.Context(), msg.Payload) // ack: the payload is safe
		}
		if err := post(msg.Context(), msg.Payload); err != nil {
			cb.RecordFailure()
			return err // nack: the message is redelivered
		}
		cb.RecordSuccess()
		return nil
	}
}

// The middleware does the same for any watermill handler.
func ExampleBreaker_Middleware() {
	store := &memStore{}
	breaker, err := syncbreaker.New(syncbreaker.Config{FailureThreshold: 1}, store, &recordingRepublisher{})
	if err != nil {
		log.Fatal(err)
	}
	handler := breaker.Middleware(func(msg *message.Message) ([]*message.Message, error) {
		return nil, errors.New("503")
	})
	for _, id := range []string{"1", "2"} {
		_, err := handler(message.NewMessage(id, []byte(`{"cmd":"ls"}`)))
		fmt.Printf("message %s: err=%v state=%v\n", id, err, breaker.State())
	}
	fmt.Println("pending:", store.payloads())
	// Output:
	// message 1: err=<nil> state=open
	// message 2: err=<nil> state=open
	// pending: [{"cmd":"ls"} {"cmd":"ls"}]
}

// RetryPending republishes what is pending now, without waiting for Run's
// next tick; OnStateChange sees every transition in order.
func ExampleBreaker_RetryPending() {
	store := &memStore{}
	rep := &recordingRepublisher{}
	breaker, err := syncbreaker.New(syncbreaker.Config{
		FailureThreshold: 1,
		OnStateChange: func(c syncbreaker.StateChange) {
			fmt.Printf("%v -> %v\n", c.From, c.To)
		},
	}, store, rep)
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	breaker.RecordFailure()
	_ = breaker.SaveForRetry(ctx, []byte("a"))
	_ = breaker.SaveForRetry(ctx, []byte("b"))

	_, err = breaker.RetryPending(ctx)
	fmt.Println("while open:", errors.Is(err, syncbreaker.ErrOpen))

	breaker.Reset() // an operator knows the server is back
	res, err := breaker.RetryPending(ctx)
	fmt.Printf("republished=%d remaining=%d err=%v ids=%v\n", res.Republished, res.Remaining, err, rep.republished())
	// Output:
	// closed -> open
	// while open: true
	// open -> closed
	// republished=2 remaining=0 err=<nil> ids=[r1 r2]
}
