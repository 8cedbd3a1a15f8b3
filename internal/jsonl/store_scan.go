package jsonl

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/syncbreaker/syncbreaker/internal/fsx"
)

// ScanConfig tunes ScanFile. The zero value reads any file the store writes
// with its default limits.
type ScanConfig struct {
	// MaxPayloadBytes is the largest payload the scanned store accepts;
	// longer lines are reported as ProblemTooLong. Zero (or anything below
	// the default) means DefaultMaxPayloadBytes, so a store whose limit was
	// lowered still reads what it wrote before.
	MaxPayloadBytes int
}

// ScanEntry is one line of a store file: a record, or the problem that kept
// it from being one.
type ScanEntry struct {
	// Line is the 1-based line number, Offset the byte offset of the
	// line's first byte and Length its size including the newline.
	Line   int
	Offset int64
	Length int64
	// Problem is ProblemNone when Record holds the decoded record.
	Problem Problem
	// Record is the decoded record. Its Payload is only valid during the
	// callback; copy it to keep it.
	Record Record
	// Legacy is true for a line written by the original implementation (a
	// bare JSON payload): its ID is derived from its offset and content and
	// its EnqueuedAt is the file's modification time.
	Legacy bool
}

// ScanFile reads one store file (active, segment, dead-letter or quarantine)
// from start to end and calls fn for every line, in order. It opens the file
// read-only and takes no lock, so it is safe while a daemon holds the store;
// a line being appended at that moment shows up as ProblemTornTail. Anything
// but a regular file fails with fsx.ErrNotRegular (a FIFO would block). Memory
// stays within one maximum-size line. If fn returns an error, ScanFile stops
// and returns it as is.
func ScanFile(path string, cfg ScanConfig, fn func(ScanEntry) error) error {
	f, err := fsx.OpenFile(path, os.O_RDONLY, 0)
	if err != nil {
		return fmt.Errorf("syncbreaker: scan: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("syncbreaker: scan: %w", err)
	}
	return scanRecords(f, maxLineSize(cfg.MaxPayloadBytes), fi.ModTime(), nil, func(e *ScanEntry, _ []byte) error {
		return fn(*e)
	})
}

// maxLineSize is the longest line a store with the given payload limit
// reads; it never goes below what the default limit allows.
func maxLineSize(maxPayload int) int {
	return encodedLineSize(max(maxPayload, DefaultMaxPayloadBytes))
}

// scanRecords is the one parser behind opening, replay, requeue and
// ScanFile. fn gets each entry and the raw line (without newline; nil for
// ProblemTooLong, whose bytes go to overflow instead, when it is non-nil).
// Both are valid only during fn: the entry is reused for the next line
// (fn makes it escape, so a new one would be an allocation a line).
// legacyTime is the EnqueuedAt given to legacy lines.
func scanRecords(r io.Reader, maxLine int, legacyTime time.Time, overflow io.Writer, fn func(*ScanEntry, []byte) error) error {
	lr := newLineReader(r, maxLine)
	var scratch []byte // payloads are valid only during fn
	e := new(ScanEntry)
	for {
		ln, err := lr.next(overflow)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		*e = ScanEntry{Line: ln.no, Offset: ln.off, Length: ln.size}
		switch {
		case ln.tooLong:
			e.Problem = ProblemTooLong
		case ln.torn:
			e.Problem = ProblemTornTail
		default:
			data := ln.data
			if ln.off == 0 {
				// A byte-order mark some editors write, at the start of
				// the file only; the line keeps its bytes as read.
				data = bytes.TrimPrefix(data, byteOrderMark)
			}
			rec, legacy, problem := decodeLineReusing(data, &scratch)
			e.Problem, e.Legacy = problem, legacy
			if legacy {
				rec.ID = legacyID(ln.off, ln.data)
				rec.EnqueuedAt = legacyTime
			}
			e.Record = rec
		}
		if err := fn(e, ln.data); err != nil {
			return err
		}
	}
}

// byteOrderMark is stripped from a file's first line (see scanRecords).
var byteOrderMark = []byte("\xEF\xBB\xBF")

// lineReader splits a stream into lines with an explicit maximum length,
// which bufio.Scanner cannot do past its buffer without failing for good.
type lineReader struct {
	br   *bufio.Reader
	max  int
	buf  []byte
	off  int64
	line int
}

type rawLine struct {
	data    []byte // without the newline; valid until the next call
	off     int64
	size    int64 // bytes consumed, newline included
	no      int
	torn    bool // EOF came before the newline
	tooLong bool // longer than max; data is nil
}

func newLineReader(r io.Reader, maxLine int) *lineReader {
	return &lineReader{br: bufio.NewReaderSize(r, 64<<10), max: maxLine}
}

// next returns the next line, or io.EOF at a clean end of input. The bytes
// of a too-long line are copied to overflow (if non-nil) as they stream by,
// so memory stays bounded by max.
func (r *lineReader) next(overflow io.Writer) (rawLine, error) {
	r.buf = r.buf[:0]
	ln := rawLine{off: r.off}
	var werr error
	var whole []byte // the line, when the reader's buffer holds it whole
	spill := func(b []byte) {
		if overflow != nil && werr == nil {
			_, werr = overflow.Write(b)
		}
	}
	for {
		chunk, err := r.br.ReadSlice('\n')
		if err == nil && ln.size == 0 && len(chunk) <= r.max+1 {
			// The common case, a whole line in the buffer: no copy.
			ln.size, whole = int64(len(chunk)), chunk
			break
		}
		ln.size += int64(len(chunk))
		switch {
		case ln.tooLong:
			spill(chunk)
		case len(r.buf)+len(chunk) > r.max+1: // +1: the newline
			ln.tooLong = true
			spill(r.buf)
			spill(chunk)
			r.buf = r.buf[:0]
		default:
			r.buf = append(r.buf, chunk...)
		}
		if err == nil {
			break
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if errors.Is(err, io.EOF) {
			if ln.size == 0 {
				return ln, io.EOF
			}
			ln.torn = true
			if ln.tooLong {
				spill([]byte{'\n'}) // keep the quarantine file line-shaped
			}
			break
		}
		return ln, fmt.Errorf("syncbreaker: read: %w", err)
	}
	if werr != nil {
		return ln, fmt.Errorf("syncbreaker: quarantine: %w", werr)
	}
	r.off += ln.size
	r.line++
	ln.no = r.line
	if !ln.tooLong {
		ln.data = r.buf
		if whole != nil {
			ln.data = whole
		}
		if !ln.torn {
			ln.data = ln.data[:len(ln.data)-1]
		}
	}
	return ln, nil
}
