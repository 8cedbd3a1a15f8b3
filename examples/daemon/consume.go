package main

import (
	"context"
	"fmt"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/syncbreaker/syncbreaker"
)

// The two ways to feed the handler from the bus. Both settle republished
// messages, so a record leaves the spill file only once its message has
// been handled: the processor loop calls breaker.Settle itself, the router
// has breaker.Middleware do it.

// consumer is what feeds the handler: close stops it (nil when closing the
// bus is enough), done reports its end.
type consumer struct {
	close func() error
	done  <-chan error
}

// consume starts feeding handler from bus, with the processor loop or, if
// useRouter, a watermill router, and returns once messages flow.
func consume(bus message.Subscriber, breaker *syncbreaker.Breaker, handler *syncHandler, useRouter bool) (consumer, error) {
	done := make(chan error, 1)
	if !useRouter {
		// Not the run's context: the loop must handle republished messages
		// until the breaker has stopped; closing the bus ends it.
		messages, err := bus.Subscribe(context.Background(), syncTopic)
		if err != nil {
			return consumer{}, err
		}
		go func() {
			process(messages, breaker, handler.Handle)
			done <- nil
		}()
		return consumer{done: done}, nil
	}

	router, err := message.NewRouter(message.RouterConfig{CloseTimeout: 10 * time.Second}, watermill.NopLogger{})
	if err != nil {
		return consumer{}, err
	}
	// The middleware drives the breaker as Handle and the loop do by hand,
	// so the handler only sends.
	router.AddMiddleware(breaker.Middleware)
	router.AddConsumerHandler("sync-to-server", syncTopic, bus, handler.Send)
	go func() { done <- router.Run(context.Background()) }() // closed explicitly, like the loop
	select {
	case <-router.Running():
		return consumer{close: router.Close, done: done}, nil
	case err := <-done:
		return consumer{}, fmt.Errorf("router: %w", err)
	}
}

// settler is what the processor loop needs of the breaker; the handler
// keeps to the four methods of syncbreaker.CircuitBreaker.
type settler interface {
	Settle(msg *message.Message, err error) bool
}

// process is the shell-history daemon's processor loop: one goroutine
// ranges over the subscription, handles each message, then acks or nacks
// it. It returns when the subscription ends.
func process(messages <-chan *message.Message, breaker settler, handle func(*message.Message) error) {
	for msg := range messages {
		err := handle(msg)
		// A republished message is acked whatever err says: nil removes its
		// record, an error leaves it pending (a nack would only have the
		// GoChannel redeliver it at once). A fresh message is nacked on
		// error, as before.
		if breaker.Settle(msg, err) || err == nil {
			msg.Ack()
		} else {
			msg.Nack()
		}
	}
}
