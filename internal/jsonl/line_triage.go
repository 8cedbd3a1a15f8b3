package jsonl

import (
	"io"
	"log/slog"
)

// triage decides, the same way wherever a scan reads lines to rewrite them
// (repair at open, a replay, RequeueDead), which lines stay records and
// which go to the quarantine, byte for byte:
//
//   - a damaged line (any Problem); a too-long one was already streamed to
//     the quarantine by the scan as it read it, so it is only counted;
//   - a legacy line, except at repair, which rewrites it as a record:
//     segments and dead letters hold only records this package wrote;
//   - a record whose line, rewritten, would pass the reader's limit (a
//     legacy payload that must go base64, say): it is quarantined as it is
//     rather than rewritten into a line the next scan would refuse.
type triage struct {
	quar     *appendLog
	maxLine  int  // the scan's line limit
	legacyOK bool // legacy lines are records (repair at open)
	// log, when set, gets a warning for each line, naming file.
	log  *slog.Logger
	file string

	lines int // lines quarantined
}

// bad reports whether e goes to the quarantine, without moving it.
func (t *triage) bad(e *ScanEntry) bool {
	switch {
	case e.Problem != ProblemNone:
		return true
	case e.Legacy && !t.legacyOK:
		return true
	}
	return !fitsRewritten(e.Record, t.maxLine)
}

// take moves e (whose line is raw) to the quarantine if it is bad, and
// reports whether it did.
func (t *triage) take(e *ScanEntry, raw []byte) (bad bool, err error) {
	if !t.bad(e) {
		return false, nil
	}
	t.lines++
	if t.log != nil {
		t.log.Warn("syncbreaker: quarantined line", "file", t.file, "line", e.Line,
			"offset", e.Offset, "bytes", e.Length, "problem", t.why(e))
	}
	if e.Problem == ProblemTooLong {
		return true, nil
	}
	return true, t.quar.writeLine(raw)
}

func (t *triage) why(e *ScanEntry) string {
	switch {
	case e.Problem != ProblemNone:
		return e.Problem.String()
	case e.Legacy && !t.legacyOK:
		return "legacy line"
	}
	return "too long to rewrite"
}

// endReader counts what a scan has read and remembers its last byte, so
// the scan can tell a line the input ended in the middle of (a torn tail),
// even one too long to hold, whose entry says only ProblemTooLong.
type endReader struct {
	r    io.Reader
	n    int64
	last byte
}

func (r *endReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if n > 0 {
		r.n += int64(n)
		r.last = p[n-1]
	}
	return n, err
}

// torn reports whether e, just scanned from r, is the input's torn tail:
// it ends where the input does, and the input's last byte is no newline.
func (r *endReader) torn(e *ScanEntry) bool {
	switch e.Problem {
	case ProblemTornTail:
		return true
	case ProblemTooLong:
		return e.Offset+e.Length == r.n && r.last != '\n'
	}
	return false
}
