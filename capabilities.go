package syncbreaker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/ThreeDotsLabs/watermill/message"
)

// Optional capabilities. A Breaker needs only a PendingStore and a
// Republisher; everything beyond them it discovers, at New, through the
// exported interfaces below (and Settler), never through a concrete type.
// A decorator that embeds the library's type (a struct embedding
// *TopicRepublisher or *JSONLStore) keeps every one of them, because
// embedding promotes their methods; one that wraps the value in a field
// hides them, and New logs what is off (see Features). No capability is a
// second way to send: every record still goes through Republish, so a
// decorator that counts in Republish sees every record.

// InFlightLimiter is a Republisher that can keep several records in flight
// at once (TopicRepublisher: RepublisherConfig.MaxInFlight). A Breaker
// whose store is a WindowReplayer keeps that many Republish calls running
// while the circuit is closed.
type InFlightLimiter interface {
	MaxInFlight() int
}

// PaceController is a Republisher whose pace a Breaker can steer
// (TopicRepublisher unless RepublisherConfig.FixedPace is set). A Breaker
// that finds one adapts the republish pace and its delivery window to the
// server (see adaptive_pace.go), under the republisher's ceilings.
type PaceController interface {
	// PaceCeiling returns the ceilings of the pace: records a second
	// (math.Inf(1): not paced) and records in flight; adaptive is false
	// when the republisher's pace is fixed, and the Breaker leaves it so.
	PaceCeiling() (rate float64, inFlight int, adaptive bool)
	// SteerPace makes pace, which returns records a second, the
	// republisher's pace: it is asked before each record is published and
	// never raises the pace above the ceiling. It must be cheap and must
	// not block (a Breaker's is one atomic load). nil goes back to the
	// fixed pace.
	SteerPace(pace func() float64)
}

// WindowReplayer is a PendingStore whose replay can keep several callbacks
// running at once and still apply their outcomes in the records' order
// (JSONLStore). window is read before each record; nil means 1.
type WindowReplayer interface {
	ReplayWindow(ctx context.Context, window func() int, fn func(context.Context, Record) error) (ReplayResult, error)
}

// Recognizer is a Republisher that can tell its own republished messages
// from any other, whether or not it still waits for them
// (TopicRepublisher: its settle token). With it a handler's re-spill of a
// republished message is known to be a copy before the message is
// settled, so no copy outlives the record's Republish.
type Recognizer interface {
	Recognizes(msg *message.Message) bool
}

// IDAppender is a PendingStore whose append says which record it made
// (JSONLStore). The Breaker needs it to keep a republished record's ID and
// place when its handler spills it again (see Breaker.SaveForRetry).
type IDAppender interface {
	AppendID(ctx context.Context, payload []byte) (id string, err error)
}

// MessageAppender is a PendingStore that keeps, with a record, the UUID of
// the message whose payload it is (JSONLStore). Settle and Middleware use
// it when they spill a fresh message's failed send, so the republished
// message can carry the original UUID (Record.MessageID,
// MetadataMessageUUID) for a server whose idempotency key is that UUID.
type MessageAppender interface {
	AppendMessage(ctx context.Context, payload []byte, messageUUID string) (id string, err error)
}

// Tombstoner is a PendingStore that can remove a record at its next replay
// without delivering it (JSONLStore: a tombstone in its ledger).
//
// SettleLate is for a record whose message the daemon handled after its
// Republish gave up waiting (a settle timeout, a stopped round): it counts
// as republished. Discard is for a record that is a copy of another one
// the store keeps (a republished record its handler spilled again): it
// counts as neither. Neither may block on I/O; a crash before the
// tombstone is durable costs a repeat, never a record.
type Tombstoner interface {
	SettleLate(id string)
	Discard(id string)
}

// Features says which optional capabilities a Breaker found in its
// republisher and its store (see Breaker.Features).
type Features struct {
	// Settle: the republisher is a Settler, so Breaker.Settle and
	// Middleware settle republished messages.
	Settle bool
	// Window is how many records a replay keeps in flight while the
	// circuit is closed, at most (the adaptive window's ceiling): the
	// republisher's MaxInFlight when it is an InFlightLimiter and the
	// store a WindowReplayer, else 1.
	Window int
	// Respill: a handler that spills a republished message again with
	// msg.Context() keeps the record's ID and place (the republisher
	// settles, the store is an IDAppender and a Tombstoner).
	Respill bool
	// LateSettle: a message handled after its Republish gave up is
	// removed at the next replay instead of being delivered again (the
	// store is a Tombstoner). Without it such a message is still acked,
	// and its record delivered again under its ID.
	LateSettle bool
	// AdaptivePace: the republisher is a PaceController whose pace is
	// not fixed, so the Breaker steers the pace and the window (at most
	// Window) to what the server takes (see Stats.Pace).
	AdaptivePace bool
}

// Features returns the optional capabilities the Breaker found at New.
func (b *Breaker) Features() Features {
	return Features{
		Settle:       b.settler != nil,
		Window:       b.window,
		Respill:      b.settler != nil && b.idAppender != nil && b.tombs != nil,
		LateSettle:   b.tombs != nil,
		AdaptivePace: b.pace != nil,
	}
}

// discoverCapabilities wires what b's republisher and store can do, and
// logs it once, naming what is off and why.
func (b *Breaker) discoverCapabilities() {
	b.settler, _ = b.republisher.(Settler)
	b.window = 1
	il, _ := b.republisher.(InFlightLimiter)
	wr, _ := b.store.(WindowReplayer)
	if il != nil && wr != nil && il.MaxInFlight() > 1 {
		b.window = il.MaxInFlight()
		b.windowed = wr
	}
	b.recognizer, _ = b.republisher.(Recognizer)
	b.idAppender, _ = b.store.(IDAppender)
	b.msgAppender, _ = b.store.(MessageAppender)
	b.tombs, _ = b.store.(Tombstoner)
	pc, _ := b.republisher.(PaceController)
	if pc != nil {
		if rate, _, adaptive := pc.PaceCeiling(); adaptive {
			b.pace = newAdaptivePace(rate, b.window, int(b.threshold))
			pc.SteerPace(b.pace.pace)
		}
	}

	f := b.Features()
	var off []string
	if !f.Settle {
		off = append(off, fmt.Sprintf("settling (%T is not a Settler: republished messages are not awaited)", b.republisher))
	}
	if il != nil && il.MaxInFlight() > 1 && wr == nil {
		off = append(off, fmt.Sprintf("the delivery window (%T is not a WindowReplayer: one record at a time)", b.store))
	}
	if f.Settle && !f.Respill {
		off = append(off, fmt.Sprintf("re-spill in place (%T is not an IDAppender and a Tombstoner: a republished record spilled again comes back under a new ID)", b.store))
	}
	if pc == nil {
		off = append(off, fmt.Sprintf("the adaptive pace (%T is not a PaceController: records go at its own pace)", b.republisher))
	}
	if !f.LateSettle {
		off = append(off, fmt.Sprintf("late settles (%T is not a Tombstoner: a message handled after its republish gave up is delivered again)", b.store))
	}
	attrs := []slog.Attr{
		slog.Bool("settle", f.Settle), slog.Int("window", f.Window),
		slog.Bool("respill", f.Respill), slog.Bool("late_settle", f.LateSettle),
		slog.Bool("adaptive_pace", f.AdaptivePace),
	}
	if len(off) > 0 {
		b.log.LogAttrs(context.Background(), slog.LevelWarn,
			"syncbreaker: features off: "+strings.Join(off, "; "), attrs...)
		return
	}
	b.log.LogAttrs(context.Background(), slog.LevelDebug, "syncbreaker: features", attrs...)
}

// Respilled returns the error a handler's message is settled with when it
// spilled a republished message again (see Breaker.SaveForRetry): the
// record is not removed, and stays in its place under its own ID with
// payload, the bytes the handler spilled. A Settler passes it on as the
// handler's error; a PendingStore finds the bytes with RespilledPayload.
func Respilled(payload []byte) error { return &respilledError{payload: payload} }

// RespilledPayload returns the payload a Respilled error in err's chain
// carries.
func RespilledPayload(err error) ([]byte, bool) {
	var r *respilledError
	if errors.As(err, &r) {
		return r.payload, true
	}
	return nil, false
}

type respilledError struct{ payload []byte }

func (e *respilledError) Error() string {
	return fmt.Sprintf("syncbreaker: the handler spilled the republished record again (%d bytes)", len(e.payload))
}
