package syncbreaker

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"maps"
	"math"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"golang.org/x/time/rate"
)

// Republisher sends a pending record back into the daemon's pipeline.
type Republisher interface {
	// Republish publishes rec; a nil error means the record is delivered
	// and may be removed from the store. rec is the Republisher's own: it
	// may hand rec.Payload on to an asynchronous publisher without copying
	// it. An error wrapping ErrNotAttempted (a timeout, a stop) keeps the
	// record as it was; any other error counts a failed attempt (see
	// PendingStore.Replay).
	Republish(ctx context.Context, rec Record) error
}

// Metadata keys a [TopicRepublisher] sets on every message it publishes, so
// a consumer can tell a republished payload from fresh data.
const (
	// MetadataRepublished is set to "true" on every republished message.
	MetadataRepublished = "syncbreaker_republished"
	// MetadataEnqueuedAt holds Record.EnqueuedAt in RFC 3339 format with
	// nanoseconds (time.RFC3339Nano), in UTC.
	MetadataEnqueuedAt = "syncbreaker_enqueued_at"
	// MetadataAttempts holds Record.Attempts in decimal: the failed
	// republish attempts before this one.
	MetadataAttempts = "syncbreaker_attempts"
	// MetadataMessageUUID holds Record.MessageID, when the record has one:
	// the UUID of the fresh message whose failed send was spilled, so a
	// server whose idempotency key is the message UUID sees the same key
	// on every try. The message's own UUID stays the record ID.
	MetadataMessageUUID = "syncbreaker_message_uuid"
	// MetadataSettleToken is set, when SettleTimeout is on, to a value
	// unique to the republisher that published the message, so Settle
	// tells its own messages from any other with one metadata lookup.
	MetadataSettleToken = "syncbreaker_settle"
)

// Republisher defaults, used where a [RepublisherConfig] field is zero.
const (
	// DefaultRepublishRate is the default Rate: records per second.
	DefaultRepublishRate = 100
	// DefaultRepublishBurst is the default Burst.
	DefaultRepublishBurst = 10
	// DefaultRepublishMaxInFlight is the default MaxInFlight.
	DefaultRepublishMaxInFlight = 1
)

// RepublisherConfig tunes a [TopicRepublisher]. The zero value publishes at
// most DefaultRepublishRate records a second, one at a time.
type RepublisherConfig struct {
	// Rate is the steady pace in records per second. Zero means
	// DefaultRepublishRate; math.Inf(1) turns pacing off (then only the
	// window adapts); a negative or NaN rate is an error. Under a Breaker
	// it is the ceiling of the adaptive pace (see FixedPace): a server
	// that has just come back, or is slower, gets what it takes. Alone,
	// or with FixedPace, it is the pace: match it to what the consumer and
	// the server it talks to can take.
	Rate float64
	// Burst is how many records may be published back to back before the
	// pace applies. Zero means DefaultRepublishBurst; negative is an error.
	// Under the adaptive pace the burst is a tenth of a second's worth of
	// the current pace, at least 1 and at most Burst.
	Burst int
	// MaxInFlight bounds how many records are in flight at once when
	// Republish is called from several goroutines: being published and,
	// with SettleTimeout, not yet settled. Zero means
	// DefaultRepublishMaxInFlight, which also keeps records in order;
	// negative is an error. A Breaker whose store is a WindowReplayer (a
	// JSONLStore) keeps this many records in flight while the circuit is
	// closed (one at a time while half-open; see InFlightLimiter); the
	// store still applies their outcomes in order, and a crash or a stop
	// repeats at most this many more. Above 1 the handler may see them out
	// of order. With another PendingStore a replay goes one record at a
	// time. Under the adaptive pace it is the ceiling of the window, which
	// starts at 1.
	MaxInFlight int
	// FixedPace turns the adaptive pace off: a Breaker then republishes at
	// Rate with MaxInFlight records in flight from the first record, and
	// an Overloaded refusal counts as a failure. By default (false) the
	// Breaker steers the pace and the window to what the server takes,
	// with Rate and MaxInFlight as ceilings: a closed epoch starts at 10
	// records a second (or Rate, when lower) and one record in flight,
	// ramps up to the ceiling within about half a second while records
	// are settled as handled, and is cut on overloads, settle timeouts
	// and a failure ratio (see PaceController and Breaker.Stats). A
	// TopicRepublisher without a Breaker always runs at Rate.
	FixedPace bool
	// Metadata is added to every message, after the syncbreaker keys (so it
	// may override them, MetadataSettleToken excepted). Nil means none. It is copied by NewRepublisher.
	Metadata map[string]string
	// Prepare, when not nil, is called on every message just before it is
	// published, to add metadata derived from the record. It must not
	// change the message UUID or payload, and it must be safe for
	// concurrent use when Republish is. msg.Payload is rec.Payload.
	Prepare func(msg *message.Message, rec Record)
	// SettleTimeout > 0: Republish returns nil only once the message is
	// settled as handled (Settle with a nil error, or Breaker.Middleware
	// after the handler); a Settle error, ctx ending or the timeout return
	// an error and the record stays pending (see Settle). 0: Publish
	// returning nil is enough, which is right for a broker whose Publish
	// means it has stored the message, and wrong for a default GoChannel,
	// whose Publish returns before any handler ran. Negative is an error.
	SettleTimeout time.Duration
}

// TopicRepublisher republishes pending records to one topic of a watermill
// publisher, paced, with the record ID as the message UUID so consumers can
// drop duplicates. Create it with [NewRepublisher]; it is safe for
// concurrent use.
//
// When a record may leave the store. With SettleTimeout set, a record is
// removed only once the daemon's handler has settled its message as
// handled: Breaker.Middleware does it after the handler, and a processor
// loop without a router calls Settle. This is the setting for a default
// GoChannel, whose Publish returns before any handler has run and whose
// queued messages die with the process. Without SettleTimeout a record is
// removed when Publish returns nil, which is right for a broker that has
// stored the message by then (NATS JetStream, Kafka, SQL), and for a
// GoChannel with BlockPublishUntilSubscriberAck.
//
// Pacing is what keeps a large backlog from becoming a flood. A default
// GoChannel returns from Publish at once and leaves, per subscriber, a
// goroutine holding each message until the subscriber acks it, so
// publishing faster than the consumer works grows goroutines and memory.
// SettleTimeout bounds this too: a republish holds its MaxInFlight slot
// until its message is settled. Also note that a GoChannel drops a message
// published while nobody subscribes to its topic and still reports
// success: subscribe (start the router) before the breaker runs.
//
// Brokers can drop duplicates by message UUID too: with watermill-nats and
// JetStream, set JetStreamConfig.TrackMsgId, so the UUID is sent as
// Nats-Msg-Id and a record republished twice within the stream's
// duplicate window is stored once.
type TopicRepublisher struct {
	pub      message.Publisher
	topic    string
	limiter  atomic.Pointer[rate.Limiter] // nil when pacing is off
	slots    chan int                     // free in-flight slots: indexes into waiters
	metadata map[string]string
	prepare  func(*message.Message, Record)

	ceilRate  float64 // Rate: the pace, or its ceiling when steered; +Inf: not paced
	ceilBurst int
	fixed     bool                           // RepublisherConfig.FixedPace
	steer     atomic.Pointer[func() float64] // the steered pace (see SteerPace)

	settleTimeout time.Duration
	token         string                         // MetadataSettleToken of this republisher's messages
	waiters       []atomic.Pointer[settleWaiter] // one per in-flight slot; nil when not waiting
}

// settleWaiter is a Republish waiting for its message to be settled.
type settleWaiter struct {
	id   string
	done chan error // cap 1; only the Settle that claimed the waiter sends
}

var (
	_ Republisher     = (*TopicRepublisher)(nil)
	_ InFlightLimiter = (*TopicRepublisher)(nil)
	_ Recognizer      = (*TopicRepublisher)(nil)
	_ PaceController  = (*TopicRepublisher)(nil)
)

// NewRepublisher returns a republisher publishing to topic through pub. It
// starts nothing and does not own pub: closing pub stays the caller's job.
func NewRepublisher(pub message.Publisher, topic string, cfg RepublisherConfig) (*TopicRepublisher, error) {
	if pub == nil {
		return nil, fmt.Errorf("%w: republisher: publisher is nil", ErrInvalidConfig)
	}
	if topic == "" {
		return nil, fmt.Errorf("%w: republisher: topic is empty", ErrInvalidConfig)
	}
	pace := cfg.Rate
	switch {
	case math.IsNaN(pace) || pace < 0:
		return nil, fmt.Errorf("%w: republisher: Rate %v is not a positive number", ErrInvalidConfig, pace)
	case pace == 0:
		pace = DefaultRepublishRate
	}
	burst := cfg.Burst
	switch {
	case burst < 0:
		return nil, fmt.Errorf("%w: republisher: Burst %d is negative", ErrInvalidConfig, burst)
	case burst == 0:
		burst = DefaultRepublishBurst
	}
	inFlight := cfg.MaxInFlight
	switch {
	case inFlight < 0:
		return nil, fmt.Errorf("%w: republisher: MaxInFlight %d is negative", ErrInvalidConfig, inFlight)
	case inFlight == 0:
		inFlight = DefaultRepublishMaxInFlight
	}
	if cfg.SettleTimeout < 0 {
		return nil, fmt.Errorf("%w: republisher: SettleTimeout %v is negative", ErrInvalidConfig, cfg.SettleTimeout)
	}

	r := &TopicRepublisher{
		pub:           pub,
		topic:         topic,
		slots:         make(chan int, inFlight),
		prepare:       cfg.Prepare,
		settleTimeout: cfg.SettleTimeout,
		ceilRate:      pace,
		ceilBurst:     burst,
		fixed:         cfg.FixedPace,
	}
	for i := range inFlight {
		r.slots <- i
	}
	if cfg.SettleTimeout > 0 {
		r.waiters = make([]atomic.Pointer[settleWaiter], inFlight)
		r.token = rand.Text()
	}
	if !math.IsInf(pace, 1) {
		r.limiter.Store(rate.NewLimiter(rate.Limit(pace), burst))
	}
	if len(cfg.Metadata) > 0 {
		r.metadata = maps.Clone(cfg.Metadata)
	}
	return r, nil
}

// Topic returns the topic records are published to.
func (r *TopicRepublisher) Topic() string { return r.topic }

// MaxInFlight returns how many records may be in flight at once (see
// RepublisherConfig.MaxInFlight and InFlightLimiter).
func (r *TopicRepublisher) MaxInFlight() int { return cap(r.slots) }

// PaceCeiling returns Rate, MaxInFlight and whether the pace may be
// steered (not FixedPace; see PaceController).
func (r *TopicRepublisher) PaceCeiling() (rate float64, inFlight int, adaptive bool) {
	return r.ceilRate, cap(r.slots), !r.fixed
}

// SteerPace makes pace the republisher's pace, capped at Rate, asked
// before each record (see PaceController); nil goes back to Rate. It does
// nothing when pacing is off (Rate math.Inf(1)) or FixedPace is set. The
// steered limiter starts with one token, so the first records of a steered
// republisher follow the steered pace, not a burst at Rate.
func (r *TopicRepublisher) SteerPace(pace func() float64) {
	if r.fixed || r.limiter.Load() == nil {
		return
	}
	if pace == nil {
		r.steer.Store(nil)
		r.limiter.Store(rate.NewLimiter(rate.Limit(r.ceilRate), r.ceilBurst))
		return
	}
	want := r.steeredRate(pace)
	r.limiter.Store(rate.NewLimiter(rate.Limit(want), 1))
	r.steer.Store(&pace)
}

// steeredRate returns what pace asks for, within (0, Rate].
func (r *TopicRepublisher) steeredRate(pace func() float64) float64 {
	want := pace()
	if math.IsNaN(want) || want <= 0 {
		return r.ceilRate
	}
	return min(want, r.ceilRate)
}

// Republish waits for an in-flight slot and a pacing slot, then publishes
// rec as one message whose UUID is rec.ID. If ctx ends while it waits, it
// returns ctx.Err() and publishes nothing. A publish error is returned
// wrapped, so the caller keeps the record pending.
//
// With SettleTimeout, it then waits, holding its slot, until the message is
// settled (see Settle): nil when it was handled; an error wrapping
// ErrNotHandled and the handler's error when it was not; ErrSettleTimeout
// when SettleTimeout passed first; ctx.Err() when ctx ended first.
func (r *TopicRepublisher) Republish(ctx context.Context, rec Record) error {
	if rec.ID == "" {
		return errors.New("syncbreaker: republish: record has no ID")
	}
	var slot int
	select {
	case slot = <-r.slots:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { r.slots <- slot }()

	if err := r.pace(ctx); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	msg := r.message(ctx, rec)
	if r.settleTimeout == 0 {
		if err := r.pub.Publish(r.topic, msg); err != nil {
			return r.publishError(rec, err)
		}
		return nil
	}

	// Register before publishing: with BlockPublishUntilSubscriberAck or
	// a router, the handler may settle before Publish returns.
	w := &settleWaiter{id: rec.ID, done: make(chan error, 1)}
	r.waiters[slot].Store(w)
	if err := r.pub.Publish(r.topic, msg); err != nil {
		if r.waiters[slot].CompareAndSwap(w, nil) {
			return r.publishError(rec, err)
		}
		return settled(rec, <-w.done) // handled despite the error: its verdict stands
	}
	timer := time.NewTimer(r.settleTimeout)
	defer timer.Stop()
	var err error
	select {
	case serr := <-w.done:
		return settled(rec, serr)
	case <-timer.C:
		err = fmt.Errorf("%w: record %s after %v", ErrSettleTimeout, rec.ID, r.settleTimeout)
	case <-ctx.Done():
		err = ctx.Err()
	}
	if !r.waiters[slot].CompareAndSwap(w, nil) {
		return settled(rec, <-w.done) // a Settle won the race: it has sent
	}
	return err // its handler may still finish: a Breaker counts that (see late_settle.go)
}

// pace waits for the limiter's next slot, or until ctx ends, which
// returns ctx.Err() as is and hands the slot back.
func (r *TopicRepublisher) pace(ctx context.Context) error {
	limiter := r.limiter.Load()
	if limiter == nil {
		return nil
	}
	if s := r.steer.Load(); s != nil {
		if want := rate.Limit(r.steeredRate(*s)); want != limiter.Limit() {
			limiter.SetLimit(want)
			limiter.SetBurst(max(1, min(r.ceilBurst, int(float64(want)/100))))
		}
	}
	// Reserve, not Wait: Wait fails at once, with its own error, when
	// ctx's deadline comes before the slot, where a caller expects
	// ctx.Err() when ctx ends.
	slot := limiter.Reserve()
	delay := slot.Delay()
	if delay == 0 {
		return nil
	}
	timer := time.NewTimer(delay)
	defer timer.Stop()
	select {
	case <-timer.C:
		return nil
	case <-ctx.Done():
		slot.Cancel()
		return ctx.Err()
	}
}

func (r *TopicRepublisher) publishError(rec Record, err error) error {
	// The ID, never the payload: payloads are private.
	return wrapErr(err, "republish record %s to topic %q", rec.ID, r.topic)
}

// settled turns the error a handler settled a message with into Republish's.
func settled(rec Record, err error) error {
	if err == nil {
		return nil
	}
	return &notHandledError{id: rec.ID, err: err}
}

type notHandledError struct {
	id  string
	err error
}

func (e *notHandledError) Error() string {
	return "syncbreaker: record " + e.id + " not handled: " + strings.TrimPrefix(e.err.Error(), "syncbreaker: ")
}

func (e *notHandledError) Unwrap() []error { return []error{ErrNotHandled, e.err} }

// Settle reports that the handler is done with msg and whether r was
// waiting for it. err nil means handled: sent; the record is then removed
// from the store. An error means not handled: the record stays where it
// is, with its ID and its place, and the daemon acks msg without spilling
// it (a nack would redeliver it at once on a GoChannel). An error marked
// with Permanent moves the record to the dead letters; a Respilled error
// (Breaker.Settle passes one when the handler spilled msg again) keeps the
// record with the bytes it carries.
//
// Messages r did not republish (fresh traffic, other republishers), and
// those it no longer waits for (settled already, given up on, published
// before a restart), return false at the cost of one metadata lookup: no
// lock, no allocation. A Breaker's Settle also recognises the ones r gave
// up on (see late_settle.go). Settle never blocks and is safe from any
// goroutine, more than once, and after anything has closed.
// Breaker.Middleware calls it itself.
func (r *TopicRepublisher) Settle(msg *message.Message, err error) bool {
	if msg == nil || r.token == "" || msg.Metadata.Get(MetadataSettleToken) != r.token {
		return false
	}
	for i := range r.waiters {
		w := r.waiters[i].Load()
		if w != nil && w.id == msg.UUID && r.waiters[i].CompareAndSwap(w, nil) {
			w.done <- err // cap 1 and only the winner of the swap sends: never blocks
			return true
		}
	}
	return false
}

// Recognizes reports whether msg is a message r republished (see
// Recognizer), whether or not r still waits for it: one metadata lookup.
func (r *TopicRepublisher) Recognizes(msg *message.Message) bool {
	return msg != nil && r.token != "" && msg.Metadata.Get(MetadataSettleToken) == r.token
}

// publishedKey gives every republished message a context of its own, so
// with a publisher that keeps it (a GoChannel with PreserveContext) a
// handler's msg.Context() still tells one message from another (see
// Breaker.SaveForRetry).
type publishedKey struct{}

// message builds the watermill message for rec. The payload is rec's own
// (see PendingStore.Replay), so it is not copied.
func (r *TopicRepublisher) message(ctx context.Context, rec Record) *message.Message {
	msg := message.NewMessageWithContext(context.WithValue(ctx, publishedKey{}, rec.ID), rec.ID, rec.Payload)
	msg.Metadata.Set(MetadataRepublished, "true")
	msg.Metadata.Set(MetadataEnqueuedAt, rec.EnqueuedAt.UTC().Format(time.RFC3339Nano))
	msg.Metadata.Set(MetadataAttempts, strconv.Itoa(rec.Attempts))
	if rec.MessageID != "" {
		msg.Metadata.Set(MetadataMessageUUID, rec.MessageID)
	}
	for k, v := range r.metadata {
		msg.Metadata.Set(k, v)
	}
	if r.prepare != nil {
		r.prepare(msg, rec)
	}
	if r.token != "" {
		msg.Metadata.Set(MetadataSettleToken, r.token) // last: nothing may override it
	}
	return msg
}
