package jsonl

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/syncbreaker/syncbreaker/internal/fsx"
)

// The ledger (P.ledger) keeps a drain's progress through a crash: for each
// sealed segment a replay has started on, a watermark below which every
// record is settled (delivered, dead-lettered or quarantined). Opening
// skips what lies below it, and so does the next replay, so a kill -9 in
// the middle of a long drain repeats at most the records settled since the
// last checkpoint and those in flight, instead of the whole round.
//
// A watermark never moves past a record whose outcome is not durable: it
// stops at the first record of a segment that stays pending (a failed or
// skipped one), which is then retried as it was, and before the ledger is
// written the active file (where the handler may have spilled a record
// again), the dead letters and the quarantine are fsynced. Segments are
// never rewritten in place while they drain, and every watermark is bound
// to its segment's name, size and first record ID: an entry that does not
// match the file found at open is dropped, which means re-delivery, never
// a skip. The file is replaced whole through an atomicFile.
//
// Its size. It is the store's own file (0600, written only through
// saveLedger), so it is read whole, with no limit it could outgrow: a
// ledger that outgrew a limit would read as unreadable and its
// tombstones would be lost. What it holds is bounded by its entry types
// (see ledgerSizeBound): a fixed head (version, next, max_line), at most
// maxTombstones tombstones (each a valid record ID, at most maxIDLen
// bytes, in settled and again in copies), and one mark per live segment
// plus one for the active file, each of bounded size (its name and its
// fields). So it grows with the number of segments only, by at most 349
// bytes a segment for the name sync-pending.jsonl (TestLedgerSizeBound):
// with the default 1 GiB MaxBytes, 64 MiB segments make at most 17 marks,
// 64 KiB ones at most 16,385, 5.7 MB, plus at most 549 KB of tombstones.
// A seal rewrites it whole, so SegmentBytes far below the default costs
// ledger writes as well as files.

const ledgerSuffix = ".ledger"

// checkpointEvery is how often a replay writes its progress to the ledger:
// at most that many records' worth of time is delivered again after a
// crash, for about four fsyncs per checkpoint.
const checkpointEvery = 100 * time.Millisecond

// mark is what the ledger knows of a segment: its watermark, and how many
// records it was written with, so opening needs no scan of it.
type mark struct {
	Size  int64  `json:"size"`  // the segment's size: a rewritten file never matches
	First string `json:"first"` // the ID of its first record
	Off   int64  `json:"off"`   // every line below this byte offset is settled
	Lines int64  `json:"lines"` // how many lines that is
	// Records is how many records the segment was written with (fixed
	// when it is sealed or rewritten); 0 means unknown: open scans it.
	Records int64 `json:"records,omitempty"`
	// FirstAt is the first record's EnqueuedAt; kept for the active file
	// only, whose entry Close writes (see Store.recoverActive).
	FirstAt time.Time `json:"first_at,omitzero"`
}

type ledgerFile struct {
	Version int `json:"v"`
	// Next is the store's next sequence number when the ledger was
	// written: every name the ledger holds uses lower ones, and opening
	// never gives out a lower one again (see store_layout.go).
	Next     uint64          `json:"next,omitempty"`
	Segments map[string]mark `json:"segments"` // by the segment's base name
	// Settled holds the IDs of records handled after their round gave up
	// on them (see late_settle.go), oldest first.
	Settled []string `json:"settled,omitempty"`
	// Copies is the subset of Settled that are copies of another record
	// (see Store.Discard): removed, not counted as republished.
	Copies []string `json:"copies,omitempty"`
	// MaxLine bounds the longest line the store has written, recorded
	// before the line is (see Store.recordLineLimit): the reader's limit
	// covers it whatever MaxPayloadBytes says now.
	MaxLine int64 `json:"max_line,omitempty"`
}

const ledgerVersion = 1

// loadLedger reads the ledger at path. A missing ledger is empty; an
// unreadable one is reported, and the caller carries on without it
// (re-delivery, never loss).
func loadLedger(fsys fsx.FS, path string) (ledgerFile, error) {
	empty := ledgerFile{Version: ledgerVersion, Segments: map[string]mark{}}
	f, err := fsys.OpenFile(path, os.O_RDONLY, 0)
	if errors.Is(err, os.ErrNotExist) {
		return empty, nil
	}
	if err != nil {
		return empty, err
	}
	defer f.Close()
	data, err := io.ReadAll(f) // whole: see above
	if err != nil {
		return empty, err
	}
	var l ledgerFile
	if err := json.Unmarshal(data, &l); err != nil || l.Version != ledgerVersion || l.Segments == nil {
		return empty, fmt.Errorf("syncbreaker: %s is not a ledger this version reads", filepath.Base(path))
	}
	return l, nil
}

// Bounds of the ledger's parts, as json.Marshal writes them (see
// ledgerSizeBound).
const (
	// ledgerHeadBound covers {"v":1,"next":N,"segments":{},"settled":[],
	// "copies":[],"max_line":M} with both numbers at 20 digits.
	ledgerHeadBound = 128
	// tombstoneBound is one tombstone: a valid ID (never escaped) in
	// quotes, and a comma.
	tombstoneBound = maxIDLen + 3
	// markFieldsBound is a mark without its name: five int64 fields of up
	// to 20 characters with their keys, first (a valid ID) and first_at
	// (RFC 3339 with nanoseconds and an offset, 35 bytes).
	markFieldsBound = len(`{"size":,"first":"","off":,"lines":,"records":,"first_at":""},`) + 4*20 + 20 + maxIDLen + 35
	// segNameBound is what a segment's name adds to the store's base
	// name: .seg., three 20-digit numbers and their separators.
	segNameBound = len(segInfix) + 3*20 + 2
)

// ledgerSizeBound is the largest ledger of a store whose active file's
// base name takes base bytes in JSON (its length, for a name of letters,
// digits and punctuation json.Marshal leaves alone; at most six times
// that, for \u00XX), with marks entries (segments and the active file).
func ledgerSizeBound(base, marks int) int64 {
	name := base + segNameBound + len(`"":`)
	return ledgerHeadBound + 2*maxTombstones*tombstoneBound + int64(marks)*int64(name+markFieldsBound)
}

// saveLedger replaces the ledger at path with marks, next (the store's
// next sequence number), the tombstones and the line limit. It writes one
// even with no marks, to keep next.
func saveLedger(fsys fsx.FS, store string, marks map[string]mark, next uint64, tomb *tombstones, maxLine int64) error {
	path := store + ledgerSuffix
	data, err := json.Marshal(ledgerFile{Version: ledgerVersion, Next: next, Segments: marks, Settled: tomb.order, Copies: tomb.copyList(), MaxLine: maxLine})
	if err != nil {
		return err
	}
	out, err := createAtomic(fsys, store)
	if err != nil {
		return err
	}
	if _, err := out.Write(data); err != nil {
		return errors.Join(err, out.Abort())
	}
	_, err = out.Commit(path)
	return err
}

// matchMark returns m if it belongs to the segment seg as it is on disk:
// same size, same first record (a segment's name is never used twice, see
// store_layout.go; the ID is one more check, read from the file's first
// bytes only). An error reading the segment is returned: a store that
// cannot read its files does not open.
func matchMark(fsys fsx.FS, seg segment, m mark) (_ mark, ok bool, err error) {
	if m.Size != seg.size || m.Off < 0 || m.Off > seg.size || m.First == "" || m.Lines < 0 || m.Records < 0 {
		return mark{}, false, nil
	}
	id, _, err := readFirstID(fsys, seg.path)
	if err != nil || id != m.First {
		return mark{}, false, err
	}
	return m, true, nil
}

// readFirstID returns the ID of the first line of the file at path when
// the encoder wrote it (see lineID), reading only the line's first bytes,
// and the file's size.
func readFirstID(fsys fsx.FS, path string) (id string, size int64, err error) {
	f, err := fsys.OpenFile(path, os.O_RDONLY, 0)
	if err != nil {
		return "", 0, wrapErr(err, "open %s", filepath.Base(path))
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", 0, wrapErr(err, "stat %s", filepath.Base(path))
	}
	var head [128]byte // an ID of up to 100 bytes; a longer one means a scan
	n, err := io.ReadFull(f, head[:])
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
		return "", 0, wrapErr(err, "read %s", filepath.Base(path))
	}
	return lineID(head[:n]), fi.Size(), nil
}

// headTime returns the EnqueuedAt of the first record at or after the
// byte offset off of the file at path, reading from there only.
func headTime(fsys fsx.FS, path string, off int64, maxLine int) (time.Time, error) {
	var t time.Time
	f, err := fsys.OpenFile(path, os.O_RDONLY, 0)
	if err != nil {
		return t, wrapErr(err, "open %s", filepath.Base(path))
	}
	defer f.Close()
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		return t, wrapErr(err, "read %s", filepath.Base(path))
	}
	err = scanRecords(f, maxLine, time.Time{}, nil, func(e *ScanEntry, _ []byte) error {
		if e.Problem == ProblemNone {
			t = e.Record.EnqueuedAt
			return errStopScan
		}
		return nil
	})
	if err != nil && !errors.Is(err, errStopScan) {
		return t, wrapErr(err, "read %s", filepath.Base(path))
	}
	return t, nil
}

// Delivered is what the ledger of a store says is delivered although its
// files still hold it, for readers that take no lock (pendingctl): such
// records are not pending.
type Delivered struct {
	Below map[string]int64    // by segment path: every line below this byte offset
	IDs   map[string]struct{} // records handled late (see late_settle.go)
}

// Has reports whether the line e of the file at path is delivered.
func (d Delivered) Has(path string, e ScanEntry) bool {
	if e.Offset < d.Below[path] {
		return true
	}
	_, ok := d.IDs[e.Record.ID]
	return ok && e.Problem == ProblemNone && e.Record.ID != ""
}

// ReadDelivered reads the ledger of the store at path. Like the store, it
// keeps only marks that match their segment as it is.
func ReadDelivered(path string) (Delivered, error) {
	d := Delivered{Below: map[string]int64{}, IDs: map[string]struct{}{}}
	l, err := loadLedger(fsx.OS{}, path+ledgerSuffix)
	if err != nil {
		return d, err
	}
	segs, _, _, err := listStore(fsx.OS{}, path)
	if err != nil {
		return d, err
	}
	for _, seg := range segs {
		m, ok, err := matchMark(fsx.OS{}, seg, l.Segments[filepath.Base(seg.path)])
		if err != nil {
			return d, err
		}
		if ok && m.Off > 0 {
			d.Below[seg.path] = m.Off
		}
	}
	for _, id := range l.Settled {
		d.IDs[id] = struct{}{}
	}
	return d, nil
}

// lineID returns the ID of a line the encoder wrote (see appendLine), or
// "" if line does not start that way: the ID must end within line and
// hold no escape.
func lineID(line []byte) string {
	const head = `{"_v":1,"id":"`
	if !bytes.HasPrefix(line, []byte(head)) {
		return ""
	}
	id, _, ok := bytes.Cut(line[len(head):], []byte{'"'})
	if !ok || len(id) == 0 || bytes.IndexByte(id, '\\') >= 0 {
		return ""
	}
	return string(id)
}
