package jsonl

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// Downgrade. A daemon from before this library reads the store path one
// line at a time and posts each line as a payload; it knows nothing of
// envelopes, segments or the ledger. ExportLegacy writes what is pending
// back into the store path in that format, for such a release to send:
// one JSON payload a line, compacted onto one line (the same JSON value;
// the original reader posts the line as it is). What it would post
// wrongly stays in the store, as records in one segment beside the path
// (which the old release never reads, and an upgrade delivers again):
//
//   - a payload that is not JSON: the original implementation only ever
//     wrote JSON (its daemon marshals what it spills), a raw one may hold
//     a newline, and its server expects JSON;
//   - a line of legacyLineMax bytes or more: the original reader's
//     bufio.Scanner fails on it, and then on every later retry.
//
// Records already delivered (below a drain's watermark, or settled late)
// are not exported. Dead letters and the quarantine are left as they are.
//
// Order, for a crash at any point: the exported lines are written to a
// temp file and renamed over the (just sealed, so empty) store path, the
// directory fsynced; only then are the kept records written to their
// segment, which supersedes every exported one, and the exported ones
// removed. A crash in between leaves both: a downgraded daemon posts the
// path's lines, and an upgraded one reads them as legacy payloads beside
// the segments, which repeats them, never loses one.

// legacyLineMax is bufio.Scanner's default maximum token size, which the
// original reader used: a line this long, newline excluded, fails it.
const legacyLineMax = 64 << 10

// ExportReport says what ExportLegacy did.
type ExportReport struct {
	Exported    int    // payloads written to the store path, one a line
	KeptNotJSON int    // records kept in the store: their payload is not JSON
	KeptTooLong int    // records kept in the store: their line would be too long for the original reader
	KeptDamaged int    // damaged lines kept as they were, for a replay to quarantine
	Segment     string // the segment that holds what was kept; "" if nothing was
}

// Kept is how many records and lines stayed in the store.
func (r ExportReport) Kept() int { return r.KeptNotJSON + r.KeptTooLong + r.KeptDamaged }

// ExportLegacy opens the store at path (taking its lock, so it fails with
// fsx.ErrLocked while a daemon holds it), writes what is pending into the
// store path one payload a line, as described above, and releases the
// store.
func ExportLegacy(path string, cfg Config) (ExportReport, error) {
	var rep ExportReport
	s, err := Open(path, cfg)
	if err != nil {
		return rep, err
	}
	// Everything pending goes to segments; the active file is left empty.
	s.replaySem <- struct{}{}
	s.syncMu.Lock()
	err = s.sealLocked()
	s.recordSealed()
	s.syncMu.Unlock()
	<-s.replaySem
	if err != nil {
		return rep, errors.Join(prefixed(err, "export"), s.Close())
	}
	// From here the store is closed to callers: nothing writes the active
	// file, and the watch does not restore it when it is replaced.
	s.mu.Lock()
	s.closed = true
	active := s.active
	s.setActive(nil)
	s.mu.Unlock()
	s.stopSyncTimer()
	s.stopWatch()
	if active != nil {
		err = active.Close() // Windows renames over a closed file only
	}
	if err == nil {
		rep, err = s.exportLegacy()
	}
	return rep, errors.Join(prefixed(err, "export"), s.lock.Close())
}

func (s *Store) exportLegacy() (ExportReport, error) {
	var rep ExportReport
	segs, _, _, err := listStore(s.fs, s.path)
	if err != nil {
		return rep, err
	}
	out, err := createAtomic(s.fs, s.path)
	if err != nil {
		return rep, err
	}
	defer out.Abort()
	keep, err := createAtomic(s.fs, s.path)
	if err != nil {
		return rep, err
	}
	defer keep.Abort()
	var kept int64
	var firstKept string
	var line bytes.Buffer
	maxLine := s.readLimit()
	for _, seg := range segs {
		start := int64(0)
		if m := s.markOf(filepath.Base(seg.path)); m.Size == seg.size {
			start = m.Off // delivered below it
		}
		f, err := s.fs.OpenFile(seg.path, os.O_RDONLY, 0)
		if err != nil {
			return rep, err
		}
		err = scanRecords(f, maxLine, time.Time{}, nil, func(e *ScanEntry, raw []byte) error {
			if e.Offset < start {
				return nil
			}
			keepRaw := func() error {
				if kept == 0 && e.Problem == ProblemNone {
					firstKept = e.Record.ID
				}
				kept++
				_, err := keep.Write(append(bytes.Clone(raw), '\n'))
				return err
			}
			if e.Problem != ProblemNone {
				rep.KeptDamaged++
				return keepRaw()
			}
			if ok, _ := s.tombstoned(e.Record.ID); ok {
				return nil // delivered late, or a copy
			}
			p := e.Record.Payload
			line.Reset()
			switch {
			case !json.Valid(p):
				rep.KeptNotJSON++
				return keepRaw()
			case json.Compact(&line, p) != nil || line.Len() >= legacyLineMax:
				rep.KeptTooLong++
				return keepRaw()
			}
			line.WriteByte('\n')
			rep.Exported++
			_, err := out.Write(line.Bytes())
			return err
		})
		err = errors.Join(err, f.Close())
		if err != nil {
			return rep, wrapErr(err, "read %s", filepath.Base(seg.path))
		}
	}
	// The exported lines first (see above); Commit fsyncs the file and
	// the directory.
	if _, err := out.Commit(s.path); err != nil {
		return rep, err
	}
	if len(segs) == 0 {
		return rep, nil
	}
	if kept > 0 {
		rev, err := s.takeSeq()
		if err != nil {
			return rep, err
		}
		target := rewritePath(s.path, segs[0].lo, segs[len(segs)-1].hi, rev)
		if _, err := keep.Commit(target); err != nil {
			return rep, err
		}
		rep.Segment = target
	}
	for _, seg := range segs {
		if err := s.fs.Remove(seg.path); err != nil && !errors.Is(err, os.ErrNotExist) {
			// Superseded by the kept segment (or exported): the next open
			// removes it, after the warning this error becomes.
			return rep, fmt.Errorf("syncbreaker: remove %s: %w", filepath.Base(seg.path), err)
		}
	}
	if err := s.fs.SyncDir(s.dir); err != nil {
		return rep, err
	}
	// The ledger keeps the counter and the kept segment's count; the
	// tombstones' records are gone.
	s.ledgerMu.Lock()
	s.tomb = tombstones{dirty: true}
	s.ledgerMu.Unlock()
	return rep, s.updateLedger(true, func(m map[string]mark) {
		clear(m)
		if kept > 0 && firstKept != "" {
			m[filepath.Base(rep.Segment)] = mark{Size: keep.Size(), First: firstKept, Records: kept - int64(rep.KeptDamaged)}
		}
	})
}
