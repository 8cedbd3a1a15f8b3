// Package syncbreaker keeps a daemon's outbound data safe while its server is down.
//
// A daemon wraps the call that ships a payload to its server in a [Breaker].
// While the server answers, the breaker stays closed and costs a couple of
// atomic operations per call. After FailureThreshold consecutive failures it
// opens: payloads are spilled to a durable [PendingStore] (a JSONL file, see
// [OpenJSONLStore]) and the caller is told the payload was handled, so a
// message queue acks it instead of redelivering it in a hot loop. After
// ResetInterval the breaker goes half-open and republishes what is pending
// through the daemon's own watermill publisher (see [NewRepublisher]), so
// spilled payloads flow through the same handler as fresh data.
//
// The three parts are independent and meet only through small interfaces:
// [CircuitBreaker] for handlers, [PendingStore] for storage and [Republisher]
// for the way back.
package syncbreaker
