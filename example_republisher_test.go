package syncbreaker_test

import (
	"context"
	"fmt"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/pubsub/gochannel"

	"github.com/syncbreaker/syncbreaker"
)

// A republisher sends spilled records back to the topic the daemon's
// handler consumes. The message UUID is the record ID, the same on every
// retry, so the consumer can drop a record it has already handled.
func ExampleNewRepublisher() {
	// BlockPublishUntilSubscriberAck makes Publish wait for the handler, so
	// a large backlog never piles up as goroutines inside the GoChannel.
	bus := gochannel.NewGoChannel(gochannel.Config{BlockPublishUntilSubscriberAck: true}, watermill.NopLogger{})
	defer bus.Close()
	msgs, err := bus.Subscribe(context.Background(), "sync") // subscribe first: a GoChannel drops messages nobody listens to
	if err != nil {
		panic(err)
	}
	go func() {
		for msg := range msgs {
			fmt.Println(msg.UUID, len(msg.Payload), "bytes,",
				"republished:", msg.Metadata.Get(syncbreaker.MetadataRepublished),
				"attempts:", msg.Metadata.Get(syncbreaker.MetadataAttempts),
				"enqueued:", msg.Metadata.Get(syncbreaker.MetadataEnqueuedAt))
			msg.Ack()
		}
	}()

	republisher, err := syncbreaker.NewRepublisher(bus, "sync", syncbreaker.RepublisherConfig{
		Rate:  20, // records per second: what the server can take just after an outage
		Burst: 5,
	})
	if err != nil {
		panic(err)
	}
	err = republisher.Republish(context.Background(), syncbreaker.Record{
		ID:         "rec-0001",
		Payload:    []byte(`{"commands":["make test"]}`),
		EnqueuedAt: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC),
		Attempts:   2,
	})
	fmt.Println("republish error:", err)
	// Output:
	// rec-0001 26 bytes, republished: true attempts: 2 enqueued: 2026-03-01T12:00:00Z
	// republish error: <nil>
}
