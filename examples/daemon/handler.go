package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

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

// Handle is the processor loop's handler, shaped as the shell-history
// daemon's own: while the circuit is open it spills a re-marshalled copy of
// the payload (not the bytes it received) with msg.Context(); otherwise it
// posts, and on a failed post it records the failure and returns the error
// without spilling. The loop's breaker.Settle then spills the payload and
// the message is acked, so nothing is left to the message queue's
// redeliveries. A republished payload it spills again keeps its record:
// Settle finds the spill was for that message, and the record stays
// pending in its place, under its ID, with the bytes spilled.
func (h *syncHandler) Handle(msg *message.Message) error {
	ctx := msg.Context()
	if h.breaker.IsOpen() {
		var body map[string]any
		if err := json.Unmarshal(msg.Payload, &body); err != nil {
			return fmt.Errorf("decode sync payload: %w", err)
		}
		copied, err := json.Marshal(body)
		if err != nil {
			return err
		}
		return h.breaker.SaveForRetry(ctx, copied)
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
	return err
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
	if resp.StatusCode/100 == 2 {
		return nil
	}
	err = fmt.Errorf("%w %s", errServerAnswered, resp.Status)
	if d, ok := syncbreaker.ParseRetryAfter(resp.Header.Get("Retry-After"), time.Now()); ok {
		return syncbreaker.RetryAfter(err, d) // the server said when to come back: open for that long
	}
	if resp.StatusCode/100 == 4 && resp.StatusCode != http.StatusTooManyRequests {
		return syncbreaker.Permanent(err) // retrying the same payload cannot help
	}
	return err
}

// errServerAnswered is wrapped by post's error for an answer that is not a
// 2xx.
var errServerAnswered = errors.New("server answered")
