package syncbreaker

import (
	"errors"
	"fmt"
	"strings"

	"github.com/syncbreaker/syncbreaker/internal/jsonl"
)

// Sentinel errors callers branch on with errors.Is.
var (
	// ErrOpen is returned by RetryPending when the circuit is open, or when
	// it opened while the replay ran and the replay was stopped.
	ErrOpen = errors.New("syncbreaker: circuit open")
	// ErrAlreadyRunning is returned by Run while another Run of the same
	// Breaker has not returned yet.
	ErrAlreadyRunning = errors.New("syncbreaker: breaker already running")
	// ErrReplayInProgress is returned by RetryPending while another replay of
	// the same Breaker is in progress; the records will be handled by that
	// replay or by the next one.
	ErrReplayInProgress = errors.New("syncbreaker: replay already in progress")
	// ErrNotAttempted, wrapped by the error a Replay callback returns,
	// keeps the record exactly as it was, without counting an attempt:
	// the record was not tried, or nothing says it failed (ErrSettleTimeout
	// wraps it).
	ErrNotAttempted = jsonl.ErrNotAttempted
	// ErrSettleTimeout is returned by TopicRepublisher.Republish when the
	// published message was not settled within SettleTimeout. The record
	// stays pending with no attempt counted: the handler may simply be
	// slow, or the daemon does not call Settle.
	ErrSettleTimeout = fmt.Errorf("%w: republished message not settled in time", ErrNotAttempted)
	// ErrNotHandled is wrapped, with the handler's error, by
	// TopicRepublisher.Republish when the handler settled the message with
	// an error: it was delivered, and the handler could not send it.
	ErrNotHandled = errors.New("syncbreaker: republished message not handled")
	// ErrInvalidConfig is wrapped by New, NewRepublisher and OpenJSONLStore
	// when the configuration or their arguments cannot work; the message
	// names the field. It is the store engine's own value, so errors.Is
	// works on what any layer returns.
	ErrInvalidConfig = jsonl.ErrInvalidConfig
)

// errPrefix starts the text of every error the package returns, once.
const errPrefix = "syncbreaker: "

// wrapErr adds context to err, which may already carry the prefix (the
// store's errors and this package's sentinels do): the text is
// "syncbreaker: <context>: <err without its own prefix>", so the prefix
// appears once however many layers add context. errors.Is and errors.As
// see err.
func wrapErr(err error, format string, args ...any) error {
	return &contextError{
		msg:  errPrefix + fmt.Sprintf(format, args...) + ": " + strings.TrimPrefix(err.Error(), errPrefix),
		errs: []error{err},
	}
}

// markErr marks err with the sentinel mark, as fmt.Errorf("%w: %w", mark,
// err) does, with the prefix once: "<mark>: <err without its prefix>".
func markErr(mark, err error) error {
	return &contextError{
		msg:  mark.Error() + ": " + strings.TrimPrefix(err.Error(), errPrefix),
		errs: []error{mark, err},
	}
}

type contextError struct {
	msg  string
	errs []error
}

func (e *contextError) Error() string   { return e.msg }
func (e *contextError) Unwrap() []error { return e.errs }

// Permanent wraps err to say that retrying the same payload cannot succeed
// (for example the server rejected it as malformed) and that the server is
// not failing. Execute and the middleware return such an error to the caller
// unchanged: it is not counted as a server failure and the payload is not
// spilled. Permanent(nil) is nil. errors.Is and errors.As see through it.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err: err}
}

// IsPermanent reports whether err, or any error it wraps, was marked with
// Permanent.
func IsPermanent(err error) bool {
	var p *permanentError
	return errors.As(err, &p)
}

type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }
