package syncbreaker_test

import (
	"context"
	"errors"
	"fmt"
	"log"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/gochannel"

	"github.com/syncbreaker/syncbreaker"
)

// A daemon wires the breaker around the handler that posts to its server.
// The store and republisher here are in-memory stand-ins; a real daemon
// uses syncbreaker.OpenJSONLStore and syncbreaker.NewRepublisher with its
// own publisher and topic. (Not run: it blocks until interrupted.)
func Example_wiring() {
	ctx := context.Background()
	pubSub := gochannel.NewGoChannel(gochannel.Config{}, watermill.NopLogger{})

	breaker, err := syncbreaker.New(syncbreaker.Config{}, &memStore{}, &recordingRepublisher{})
	if err != nil {
		log.Fatal(err)
	}
	router, err := message.NewRouter(message.RouterConfig{}, watermill.NopLogger{})
	if err != nil {
		log.Fatal(err)
	}
	router.AddConsumerHandler("sync", "sync", pubSub, func(msg *message.Message) error {
		return postToServer(msg.Context(), msg.Payload)
	})
	router.AddMiddleware(breaker.Middleware)

	go func() { _ = breaker.Run(ctx) }() // open interval and periodic retries
	_ = router.Run(ctx)
}

// postToServer stands for the daemon's HTTP call.
func postToServer(context.Context, []byte) error { return nil }

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
