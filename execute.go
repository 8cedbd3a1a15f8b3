package syncbreaker

import (
	"context"
	"errors"
)

// Execute sends payload through send under the breaker and makes sure the
// payload is never lost: on return it was sent, or it is in the store, or
// the error is returned and the caller still owns it. Each call is one
// send: it takes at most one half-open admission, as one IsOpen call does.
//
//   - Open, or half-open with its probes all admitted (see
//     Config.HalfOpenMaxProbes): payload is spilled to the store, send is
//     not called, nil is returned (the payload is handled).
//   - Closed, or half-open and admitted as a probe: send is called with ctx
//     and its outcome recorded. A nil error is a success. An error that
//     counts as a failure (see Config.IsFailure) that leaves the circuit
//     open spills the payload and returns nil, and so does one marked
//     with RetryAfter, which opens the circuit at once for the server's
//     delay; with Config.SpillFailures SpillAlways any server failure is
//     spilled. Otherwise the error is returned as is.
//   - Errors marked with Permanent, errors IsFailure rejects, and context
//     errors while ctx has ended are returned as they are: they are neither a
//     success nor a failure and the payload is not spilled. A probe that
//     ends this way, or whose send panics, gives its admission back, so the
//     next call is admitted in its place.
//
// When spilling fails, the spill error is returned (joined with send's error
// if there was one). An outcome of a call that started before a state change
// (or whose half-open admission expired, see Config.HalfOpenProbeTimeout)
// is not recorded, so a slow call cannot close or re-open a circuit that has
// moved on.
func (b *Breaker) Execute(ctx context.Context, payload []byte, send func(context.Context) error) error {
	w := b.word.Load()
	if w&stateMask != 0 { // not closed
		return b.executeGuarded(ctx, w, payload, send)
	}
	err := send(ctx)
	if !b.record(ctx, w, err) && !b.spillsAlways(ctx, err) {
		return err
	}
	return b.spillFailed(ctx, payload, err)
}

// spillsAlways reports whether Execute spills a send that failed with err
// while the circuit stays closed (Config.SpillFailures SpillAlways).
func (b *Breaker) spillsAlways(ctx context.Context, err error) bool {
	return err != nil && b.spillMode == SpillAlways && b.isServerFailure(ctx, err)
}

// executeGuarded is Execute for a call that found the circuit open or
// half-open in the word w: refused (open, or no admission free), it spills
// payload; admitted, it sends as Execute does, and a probe whose send
// panics gives its admission back.
func (b *Breaker) executeGuarded(ctx context.Context, w uint64, payload []byte, send func(context.Context) error) error {
	w, ok := b.admit(w)
	if !ok {
		return b.appendSpill(ctx, payload)
	}
	var err error
	if stateOf(w) == StateHalfOpen {
		ended := false
		defer func() {
			if !ended { // send panicked (or called runtime.Goexit): no outcome
				b.release(w)
			}
		}()
		err = send(ctx)
		ended = true
	} else {
		err = send(ctx) // closed meanwhile
	}
	if !b.record(ctx, w, err) && !b.spillsAlways(ctx, err) {
		return err
	}
	return b.spillFailed(ctx, payload, err)
}

// spillFailed spills the payload of a send that failed with err and left
// the circuit open; if the spill fails too, both errors are returned.
func (b *Breaker) spillFailed(ctx context.Context, payload []byte, err error) error {
	if serr := b.appendSpill(ctx, payload); serr != nil {
		return errors.Join(err, serr)
	}
	b.noteClosedSpill()
	return nil
}

// record records the outcome err of a call that started when the word was
// w, and reports whether its payload must be spilled: err is a failure
// that left the circuit open. A half-open probe whose err is no outcome
// gives its admission back.
func (b *Breaker) record(ctx context.Context, w uint64, err error) (spill bool) {
	if err == nil {
		b.success(w, true)
		return false
	}
	return b.recordErr(ctx, w, err)
}

// recordErr is record for an error, out of line so that the success path
// stays as small as it was.
//
//go:noinline
func (b *Breaker) recordErr(ctx context.Context, w uint64, err error) (spill bool) {
	if d, ok := RetryAfterDelay(err); ok && !IsPermanent(err) {
		return b.trip(w, true, d)
	}
	if isOverload(err) {
		return b.overload(w, true)
	}
	if b.countsAsFailure(ctx, err) {
		return b.serverFailure(w, true)
	}
	b.release(w)
	return false
}

// countsAsFailure reports whether err says the server is failing.
func (b *Breaker) countsAsFailure(ctx context.Context, err error) bool {
	if IsPermanent(err) {
		return false
	}
	if ctx.Err() != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) {
		return false // the caller gave up; that says nothing about the server
	}
	if b.isFailure != nil {
		return b.isFailure(err)
	}
	return true
}
