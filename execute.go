package syncbreaker

import (
	"context"
	"errors"
)

// Execute sends payload through send under the breaker and makes sure the
// payload is never lost: on return it was sent, or it is in the store, or
// the error is returned and the caller still owns it.
//
//   - Open: payload is spilled to the store, send is not called, nil is
//     returned (the payload is handled).
//   - Closed or half-open: send is called with ctx and its outcome recorded.
//     A nil error is a success. An error that counts as a failure (see
//     Config.IsFailure) that leaves the circuit open spills the payload and
//     returns nil; otherwise the error is returned as is.
//   - Errors marked with Permanent, errors IsFailure rejects, and context
//     errors while ctx has ended are returned as they are: they are neither a
//     success nor a failure and the payload is not spilled.
//
// When spilling fails, the spill error is returned (joined with send's error
// if there was one). An outcome of a call that started before a state change
// is not recorded, so a slow call cannot close or re-open a circuit that has
// moved on.
func (b *Breaker) Execute(ctx context.Context, payload []byte, send func(context.Context) error) error {
	w := b.word.Load()
	if stateOf(w) == StateOpen {
		return b.SaveForRetry(ctx, payload)
	}
	err := send(ctx)
	if !b.record(ctx, w, err) {
		return err
	}
	if serr := b.SaveForRetry(ctx, payload); serr != nil {
		return errors.Join(err, serr)
	}
	return nil
}

// record records the outcome err of a call that started when the word was
// w, and reports whether its payload must be spilled: err is a failure
// that left the circuit open.
func (b *Breaker) record(ctx context.Context, w uint64, err error) (spill bool) {
	if err == nil {
		b.success(w, true)
		return false
	}
	return b.countsAsFailure(ctx, err) && b.failure(w, true)
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
