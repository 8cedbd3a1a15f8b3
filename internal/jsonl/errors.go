package jsonl

import (
	"context"
	"fmt"
	"strings"
)

// errPrefix starts the text of every error the store returns, once.
const errPrefix = "syncbreaker: "

// wrapErr adds context to err, an error that may already carry the prefix
// (the engine's errors do, since they are returned as they are too): the
// text is "syncbreaker: <context>: <err without its own prefix>", so the
// prefix appears once however many layers add context. errors.Is and
// errors.As see err.
func wrapErr(err error, format string, args ...any) error {
	return &contextError{
		msg: errPrefix + fmt.Sprintf(format, args...) + ": " + strings.TrimPrefix(err.Error(), errPrefix),
		err: err,
	}
}

type contextError struct {
	msg string
	err error
}

func (e *contextError) Error() string { return e.msg }
func (e *contextError) Unwrap() error { return e.err }

// prefixed returns err with the package prefix and op as context when it
// lacks the prefix (an OS error that came up unwrapped), and err as it is
// otherwise: nil, a context's own error, or one that already names the
// package.
func prefixed(err error, op string) error {
	if err == nil || err == context.Canceled || err == context.DeadlineExceeded ||
		strings.HasPrefix(err.Error(), errPrefix) {
		return err
	}
	return wrapErr(err, "%s", op)
}
