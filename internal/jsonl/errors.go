package jsonl

import (
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
