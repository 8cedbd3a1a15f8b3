package syncbreaker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"strconv"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
)

// Republisher sends a pending record back into the daemon's pipeline.
type Republisher interface {
	// Republish publishes rec; a nil error means it is delivered to the
	// publisher and may be removed from the store. rec.Payload may be a
	// store's reused buffer, valid only during the call: an implementation
	// that hands it on asynchronously copies it first, as TopicRepublisher
	// does.
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
	// DefaultRepublishRate; math.Inf(1) turns pacing off; a negative or NaN
	// rate is an error. Match it to what the consumer and the server it
	// talks to can take: a server that has just come back should not get
	// the whole backlog at once.
	Rate float64
	// Burst is how many records may be published back to back before the
	// pace applies. Zero means DefaultRepublishBurst; negative is an error.
	Burst int
	// MaxInFlight bounds how many Publish calls run at the same time when
	// Republish is called from several goroutines. Zero means
	// DefaultRepublishMaxInFlight, which also keeps records in order;
	// negative is an error. It bounds delivery to the consumer only if the
	// publisher's Publish waits for it (see [TopicRepublisher]).
	MaxInFlight int
	// Metadata is added to every message, after the syncbreaker keys (so it
	// may override them). Nil means none. It is copied by NewRepublisher.
	Metadata map[string]string
	// Prepare, when not nil, is called on every message just before it is
	// published, to add metadata derived from the record. It must not
	// change the message UUID or payload, and it must be safe for
	// concurrent use when Republish is. rec.Payload is valid only during
	// the call (see PendingStore.Replay); msg.Payload is a copy.
	Prepare func(msg *message.Message, rec Record)
}

// TopicRepublisher republishes pending records to one topic of a watermill
// publisher, paced, with the record ID as the message UUID so consumers can
// drop duplicates. Create it with [NewRepublisher]; it is safe for
// concurrent use.
//
// Pacing is what keeps a large backlog from becoming a flood. A watermill
// GoChannel is the common case and the sharpest: its Publish returns at
// once and leaves, per subscriber, a goroutine holding each message until
// the subscriber acks it, so publishing faster than the consumer works
// grows goroutines and memory without limit. Either set
// gochannel.Config.BlockPublishUntilSubscriberAck, so each Publish waits
// for the consumer and MaxInFlight bounds what is outstanding, or choose a
// Rate the consumer can keep up with. Also note that a GoChannel drops a
// message published while nobody subscribes to its topic and still reports
// success: subscribe (start the router) before the breaker runs.
//
// Brokers can drop duplicates by message UUID too: with watermill-nats and
// JetStream, set JetStreamConfig.TrackMsgId, so the UUID is sent as
// Nats-Msg-Id and a record republished twice within the stream's
// duplicate window is stored once.
type TopicRepublisher struct {
	pub      message.Publisher
	topic    string
	pacer    *pacer        // nil when pacing is off
	slots    chan struct{} // semaphore of MaxInFlight
	metadata map[string]string
	prepare  func(*message.Message, Record)
}

var _ Republisher = (*TopicRepublisher)(nil)

// NewRepublisher returns a republisher publishing to topic through pub. It
// starts nothing and does not own pub: closing pub stays the caller's job.
func NewRepublisher(pub message.Publisher, topic string, cfg RepublisherConfig) (*TopicRepublisher, error) {
	if pub == nil {
		return nil, errors.New("syncbreaker: republisher: publisher is nil")
	}
	if topic == "" {
		return nil, errors.New("syncbreaker: republisher: topic is empty")
	}
	rate := cfg.Rate
	switch {
	case math.IsNaN(rate) || rate < 0:
		return nil, fmt.Errorf("syncbreaker: republisher: rate %v is not a positive number", rate)
	case rate == 0:
		rate = DefaultRepublishRate
	}
	burst := cfg.Burst
	switch {
	case burst < 0:
		return nil, fmt.Errorf("syncbreaker: republisher: burst %d is negative", burst)
	case burst == 0:
		burst = DefaultRepublishBurst
	}
	inFlight := cfg.MaxInFlight
	switch {
	case inFlight < 0:
		return nil, fmt.Errorf("syncbreaker: republisher: max in flight %d is negative", inFlight)
	case inFlight == 0:
		inFlight = DefaultRepublishMaxInFlight
	}

	r := &TopicRepublisher{
		pub:     pub,
		topic:   topic,
		slots:   make(chan struct{}, inFlight),
		prepare: cfg.Prepare,
	}
	if !math.IsInf(rate, 1) {
		r.pacer = newPacer(rate, burst)
	}
	if len(cfg.Metadata) > 0 {
		r.metadata = maps.Clone(cfg.Metadata)
	}
	return r, nil
}

// Topic returns the topic records are published to.
func (r *TopicRepublisher) Topic() string { return r.topic }

// Republish waits for an in-flight slot and a pacing slot, then publishes
// rec as one message whose UUID is rec.ID. If ctx ends while it waits, it
// returns ctx.Err() and publishes nothing. A publish error is returned
// wrapped, so the caller keeps the record pending.
func (r *TopicRepublisher) Republish(ctx context.Context, rec Record) error {
	if rec.ID == "" {
		return errors.New("syncbreaker: republish: record has no ID")
	}
	select {
	case r.slots <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-r.slots }()

	if r.pacer != nil {
		if err := r.pacer.Wait(ctx); err != nil {
			return err
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}

	if err := r.pub.Publish(r.topic, r.message(ctx, rec)); err != nil {
		// The ID, never the payload: payloads are private.
		return fmt.Errorf("syncbreaker: republish record %s to topic %q: %w", rec.ID, r.topic, err)
	}
	return nil
}

// message builds the watermill message for rec.
func (r *TopicRepublisher) message(ctx context.Context, rec Record) *message.Message {
	// The payload is cloned because a store may reuse rec.Payload once
	// Republish returns, while an asynchronous publisher (a GoChannel, for
	// one) still hands the same bytes to its consumer.
	msg := message.NewMessageWithContext(ctx, rec.ID, bytes.Clone(rec.Payload))
	msg.Metadata.Set(MetadataRepublished, "true")
	msg.Metadata.Set(MetadataEnqueuedAt, rec.EnqueuedAt.UTC().Format(time.RFC3339Nano))
	msg.Metadata.Set(MetadataAttempts, strconv.Itoa(rec.Attempts))
	for k, v := range r.metadata {
		msg.Metadata.Set(k, v)
	}
	if r.prepare != nil {
		r.prepare(msg, rec)
	}
	return msg
}
