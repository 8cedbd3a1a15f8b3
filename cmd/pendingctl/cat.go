package main

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/syncbreaker/syncbreaker/internal/jsonl"
)

func catCommand() command {
	return command{
		name:    "cat",
		summary: "print the payloads as JSON lines, for jq (read-only)",
		usage: `
Prints one JSON value a line on stdout, in replay order (oldest sealed
segment first, the active file last), so "pendingctl cat FILE | jq" works.
This is the only command that prints payloads.

A payload that is JSON on one line (valid UTF-8, no newline, no leading or
trailing whitespace) is printed as is, byte for byte. Any other payload is
printed as {"payload_base64":"..."} (standard base64 of the exact bytes).
Without --with-meta a JSON payload that is itself such an object cannot be
told apart; --with-meta is unambiguous:

  {"id":"...","enqueued_at":"RFC 3339","attempts":N,"payload":<JSON>}
  {"id":"...","enqueued_at":"RFC 3339","attempts":N,"payload_base64":"..."}

with "legacy":true before the payload for a line written by the original
implementation (its id is derived from its place in the file, its time is
the file's modification time).

Lines that do not decode are not printed; each is reported on stderr with
file, line, byte offset and reason, and the exit code is 1. With
--quarantine that is most lines: the quarantine file holds the damaged lines
a repair set aside; use a hex viewer at the reported offsets to inspect
them. Read-only and lock-free: safe while the daemon runs, but a replay
running meanwhile moves records between files, so a record may then be
missed or shown twice; stop the daemon for an exact listing.`,
		setup: func(fs *flag.FlagSet) func(string, io.Writer, io.Writer) int {
			withMeta := fs.Bool("with-meta", false, "wrap each payload with its id, enqueue time and attempts")
			dead := fs.Bool("dead", false, "print the dead-letter file instead of the pending records")
			quarantine := fs.Bool("quarantine", false, "print what decodes in the quarantine file instead of the pending records")
			maxPayload := maxPayloadFlag(fs)
			return func(path string, stdout, stderr io.Writer) int {
				if *dead && *quarantine {
					fmt.Fprintln(stderr, "pendingctl cat: --dead and --quarantine exclude each other")
					return exitUsage
				}
				c := catter{withMeta: *withMeta, cfg: jsonl.ScanConfig{MaxPayloadBytes: *maxPayload}}
				switch {
				case *dead:
					c.which = "dead"
				case *quarantine:
					c.which = "quarantine"
				}
				return c.run(path, stdout, stderr)
			}
		},
	}
}

type catter struct {
	withMeta bool
	which    string // "" (pending), "dead" or "quarantine"
	cfg      jsonl.ScanConfig
}

func (c catter) run(path string, stdout, stderr io.Writer) int {
	l, err := storeLayout(path, c.cfg)
	if err != nil {
		return fail(stderr, "cat", err)
	}
	var files []string
	switch c.which {
	case "dead":
		if l.Dead != "" {
			files = []string{l.Dead}
		}
	case "quarantine":
		if l.Quarantine != "" {
			files = []string{l.Quarantine}
		}
	default:
		files = pendingFiles(l)
	}
	w := bufio.NewWriterSize(stdout, 64<<10)
	var line []byte
	skipped := 0
	marks := settledMarks(path) // delivered lines are not pending
	if c.which != "" {
		marks = jsonl.Delivered{}
	}
	for _, file := range files {
		err := scanPending(file, marks, c.cfg, func(e jsonl.ScanEntry) error {
			if e.Problem != jsonl.ProblemNone {
				skipped++
				// stderr may be the same terminal as stdout: flush first
				// so the report lands between the right lines.
				if err := w.Flush(); err != nil {
					return err
				}
				_, err := fmt.Fprintf(stderr, "%s:%d: offset %d, %d bytes: %s (not shown)\n", file, e.Line, e.Offset, e.Length, e.Problem)
				return err
			}
			line = c.appendLine(line[:0], e)
			_, err := w.Write(line)
			return err
		})
		if err != nil {
			return fail(stderr, "cat", err)
		}
	}
	if err := w.Flush(); err != nil {
		return fail(stderr, "cat", err)
	}
	if skipped > 0 {
		fmt.Fprintf(stderr, "pendingctl cat: not shown: %s that could not be decoded\n", plural(int64(skipped), "line"))
		return exitProblems
	}
	return exitOK
}

// appendLine appends e's output line, newline included, to dst.
func (c catter) appendLine(dst []byte, e jsonl.ScanEntry) []byte {
	rec := e.Record
	isJSON := jsonLine(rec.Payload) // decided once: it reads the whole payload
	if c.withMeta {
		id, _ := json.Marshal(rec.ID) // a string: cannot fail
		dst = append(dst, `{"id":`...)
		dst = append(dst, id...)
		dst = append(dst, `,"enqueued_at":"`...)
		dst = rec.EnqueuedAt.UTC().AppendFormat(dst, time.RFC3339Nano)
		dst = append(dst, `","attempts":`...)
		dst = strconv.AppendInt(dst, int64(rec.Attempts), 10)
		if e.Legacy {
			dst = append(dst, `,"legacy":true`...)
		}
		dst = append(dst, ',')
	} else if isJSON {
		dst = append(dst, rec.Payload...)
		return append(dst, '\n')
	} else {
		dst = append(dst, '{')
	}
	if isJSON {
		dst = append(dst, `"payload":`...)
		dst = append(dst, rec.Payload...)
	} else {
		dst = append(dst, `"payload_base64":"`...)
		dst = base64.StdEncoding.AppendEncode(dst, rec.Payload)
		dst = append(dst, '"')
	}
	return append(dst, '}', '\n')
}

// jsonLine reports whether p can be printed as is as one JSON line that
// every reader (jq included) parses back to the same bytes: valid JSON and
// UTF-8, no line break, no whitespace at either end that a reader would
// trim.
func jsonLine(p []byte) bool {
	if len(p) == 0 || isSpace(p[0]) || isSpace(p[len(p)-1]) {
		return false
	}
	if bytes.ContainsAny(p, "\r\n") {
		return false
	}
	return utf8.Valid(p) && json.Valid(p)
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }
