// Package syncbreaker keeps a daemon's outbound data safe while its server is down.
//
// A daemon wraps the call that ships a payload to its server in a [Breaker].
// While the server answers, the breaker stays closed and costs a couple of
// atomic operations per call. After FailureThreshold consecutive failures it
// opens: payloads are spilled to a durable [PendingStore] (a JSONL file, see
// [OpenJSONLStore]) and the caller is told the payload was handled, so a
// message queue acks it instead of redelivering it in a hot loop. After
// ResetInterval, counted from the moment it opened, the breaker goes
// half-open and republishes what is pending through the daemon's own
// watermill publisher (see [NewRepublisher]), so spilled payloads flow
// through the same handler as fresh data; the first answer from the server
// closes or re-opens the circuit.
//
// The three parts meet only through small interfaces: [CircuitBreaker] for
// handlers, [PendingStore] for storage and [Republisher] for the way back.
// What a part can do beyond them (settling, a delivery window, re-spill in
// place, late settles) the Breaker finds through exported optional
// interfaces ([Settler], [InFlightLimiter], [WindowReplayer], [IDAppender],
// [Tombstoner]), so a decorator that embeds the library's type keeps it;
// [Breaker.Features] reports what was found.
// A typical daemon builds them in main. With a default GoChannel, whose
// Publish returns before any handler has run, the republisher waits until
// the handler has settled each republished message, so a record leaves the
// disk only once the daemon has it:
//
//	store, err := syncbreaker.OpenJSONLStore(path, syncbreaker.StoreConfig{})
//	...
//	defer store.Close()
//	republisher, err := syncbreaker.NewRepublisher(pubSub, "sync", syncbreaker.RepublisherConfig{SettleTimeout: time.Minute})
//	...
//	breaker, err := syncbreaker.New(syncbreaker.Config{}, store, republisher)
//	...
//	messages, err := pubSub.Subscribe(ctx, "sync")
//	...
//	go func() {
//		for msg := range messages {
//			err := handle(msg) // IsOpen, SaveForRetry, RecordFailure, RecordSuccess
//			if breaker.Settle(msg, err) || err == nil {
//				msg.Ack()
//			} else {
//				msg.Nack()
//			}
//		}
//	}()
//	go breaker.Run(ctx)
//
// With a router, router.AddMiddleware(breaker.Middleware) does the same
// (see [Breaker.Middleware]). With a broker whose Publish means the message
// is stored (NATS JetStream, Kafka), SettleTimeout can stay 0.
//
// A payload handed to [Breaker.Execute] or the middleware is never lost: it
// is sent, or it is in the store, or the error is returned and the caller
// still owns it. Records keep one ID for their whole life, and the
// republished message's UUID is that ID, so consumers can drop duplicates
// of an at-least-once delivery. Payloads are treated as private: logs,
// errors and file names carry sizes and IDs, never content.
package syncbreaker
