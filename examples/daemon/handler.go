package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/syncbreaker/syncbreaker"
)

// idempotencyHeader carries the watermill message UUID to the server. For a
// republished payload the UUID is the pending record's ID, the same on every
// retry, so the server can drop a payload it has already taken.
const idempotencyHeader = "Idempotency-Key"

// syncHandler ships each "sync" message to the server. The breaker is
// injected: the daemon passes the real *syncbreaker.Breaker, tests pass a
// mock.
type syncHandler struct {
	breaker syncbreaker.CircuitBreaker
	client  *http.Client
	url     string
}

// Handle is the processor loop's handler. It never returns an error for a
// server failure: the payload is spilled and the message acked, so the
// message queue does not redeliver it in a hot loop while the server is
// down. A republished payload it spills again with msg.Context() keeps its
// record: Settle finds the spill was for that message, and the record stays
// pending in its place, under its ID, with the bytes spilled.
func (h *syncHandler) Handle(msg *message.Message) error {
	ctx := msg.Context()
	if h.breaker.IsOpen() {
		return h.breaker.SaveForRetry(ctx, msg.Payload)
	}
	err := h.post(ctx, msg)
	if err == nil {
		h.breaker.RecordSuccess()
		return nil
	}
	if ctx.Err() != nil {
		// The daemon is stopping: that says nothing about the server, and
		// the nack leaves the message with the message queue.
		return err
	}
	h.breaker.RecordFailure()
	return h.breaker.SaveForRetry(ctx, msg.Payload)
}

// Send posts msg to the server and does nothing else: the handler to wrap
// in breaker.Middleware (the -router wiring), which then drives the breaker
// as Handle does by hand.
func (h *syncHandler) Send(msg *message.Message) error {
	return h.post(msg.Context(), msg)
}

// post sends one payload to the server.
func (h *syncHandler) post(ctx context.Context, msg *message.Message) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.url, bytes.NewReader(msg.Payload))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(idempotencyHeader, msg.UUID)
	resp, err := h.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body) // lets the connection be reused
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("server answered %s", resp.Status)
	}
	return nil
}
