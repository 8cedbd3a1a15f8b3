package jsonl

import (
	"bytes"
	"context"
)

// replayWindow runs a drain with up to size() calls of fn at once (see
// Store.ReplayWindow), across segments. Each line gets an entry in a
// queue, in the drain's order; a record's fn runs on its own goroutine, and the
// entries' verdicts are applied from the head of the queue only, as the
// one-at-a-time drain applies them: the kept records keep their order, and
// the watermark, which stops at the first record not settled, moves only
// past lines whose verdict is in. A crash repeats what one-at-a-time would
// plus the records in flight.
type replayWindow struct {
	d        *drain
	ctx      context.Context
	size     func() int
	queue    []*windowEntry
	inFlight int
}

// windowEntry is one line of the segment, waiting for its verdict or for
// its turn to apply it.
type windowEntry struct {
	p       *progress   // the watermark of the line's segment
	e       ScanEntry   // the line's position and ID; no payload
	decided bool        // settled without fn (a bad line, a late settle)
	kind    settledKind // when decided
	stored  Record      // the record as read, its payload a copy
	raw     []byte      // the line as read, for a record kept as it was
	called  bool        // fn was called (ctx had not ended)
	done    chan error
}

// add queues the line e (raw as read, valid during the call only), and
// starts fn on it once the window has room, applying verdicts from the
// head of the queue until it has.
func (w *replayWindow) add(p *progress, e *ScanEntry, raw []byte) error {
	it := &windowEntry{p: p, e: *e}
	it.e.Record.Payload = nil
	kind, decided, err := w.d.settleWithoutFn(e, raw)
	if err != nil {
		return err
	}
	if decided {
		it.decided, it.kind = true, kind
		w.queue = append(w.queue, it)
		return nil
	}
	for w.inFlight > 0 && w.inFlight >= w.size() {
		if err := w.applyHead(); err != nil {
			return err
		}
	}
	it.stored = e.Record
	it.stored.Payload = bytes.Clone(e.Record.Payload)
	it.raw = bytes.Clone(raw)
	if w.ctx.Err() == nil {
		rec := it.stored
		rec.Payload = bytes.Clone(it.stored.Payload) // fn owns its copy
		it.called, it.done = true, make(chan error, 1)
		w.inFlight++
		fn, ctx := w.d.fn, w.ctx
		go func() { it.done <- fn(ctx, rec) }()
	}
	w.queue = append(w.queue, it)
	return nil
}

// applyHead waits for the verdict of the entry at the head of the queue
// and applies it.
func (w *replayWindow) applyHead() error {
	it := w.queue[0]
	w.queue[0] = nil
	w.queue = w.queue[1:]
	kind := it.kind
	if !it.decided {
		var ferr error
		if it.called {
			ferr = <-it.done // off the queue now: end does not wait for it again
			w.inFlight--
		}
		var err error
		if kind, err = w.d.outcome(w.ctx, it.stored, it.raw, it.called, ferr); err != nil {
			return err
		}
	}
	it.p.advance(&it.e, kind)
	return w.d.maybeCheckpoint(it.p)
}

// end applies every verdict still queued once the drain read its last
// segment with err nil. Otherwise it only waits for the calls of fn still running, which
// must not outlive the Replay, and returns err.
func (w *replayWindow) end(err error) error {
	for err == nil && len(w.queue) > 0 {
		err = w.applyHead()
	}
	for _, it := range w.queue {
		if it.called {
			<-it.done
		}
	}
	w.queue = nil
	return err
}
