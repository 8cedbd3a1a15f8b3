package jsonl

import (
	"cmp"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/syncbreaker/syncbreaker/internal/fsx"
)

// A store at path P is a set of files in P's directory:
//
//	P                          active: appends go here, nothing else writes it
//	P.seg.<lo>-<hi>            a sealed segment (lo = hi), drained oldest (lowest hi) first
//	P.seg.<lo>-<hi>.<rev>      a segment rewritten by a replay or a repair
//	P.ledger                   drain progress and record counts (see ledger.go)
//	P.dead                     dead-lettered records (MaxAttempts reached)
//	P.quarantine               lines that could not be read, byte for byte
//	P.lock                     held (flock / exclusive open) by the owner
//	P.tmp-*                    a rewrite in progress; deleted at open
//
// A segment's range names the sealed sequence numbers whose records it
// holds. A replay writes the records it keeps from segments lo..hi into one
// new segment lo-hi.<rev>, which supersedes every segment whose range lies
// inside it (the same range included, at a lower rev); they are deleted
// right after, or at the next open if the process dies first. A repair at
// open rewrites a segment the same way. Seals, replays and repairs take
// their numbers (hi for a seal, rev for a rewrite) from one counter that
// never goes back, kept in the ledger across restarts, so a name is never
// used twice: the ledger's entries stay bound to the file they describe.
//
// The counter stops short of wrapping (see maxSeq): past it a seal or a
// rewrite fails instead of taking a number that sorts first or a rev 0,
// which the listing cannot parse. A file under P.seg.* whose name does not
// parse, or that is not a regular file, is never read; it is reported
// (Layout.Unrecognized, a warning at open, pendingctl verify), never
// passed over in silence, since it may hold records.

const (
	segInfix         = ".seg."
	deadSuffix       = ".dead"
	quarantineSuffix = ".quarantine"
	lockSuffix       = ".lock"
	tmpInfix         = ".tmp-"
)

// Layout lists the files that make up a store. Paths are absolute
// when the store path given was; a missing file is "".
type Layout struct {
	Active     string
	Segments   []string // replay order, oldest first
	Superseded []string // segments a finished replay replaced; deleted at open
	Dead       string
	Quarantine string
	Lock       string
	Temp       []string // leftovers of an interrupted rewrite; deleted at open
	// Unrecognized are files named like segments (P.seg.*) that are not
	// one: a name that does not parse, or not a regular file. The store
	// never reads them, and reports them.
	Unrecognized []string
}

// Files lists the files of the store at path without opening or
// locking it; it is safe while a daemon holds the store.
func Files(path string) (Layout, error) {
	var fsys fsx.OS
	ls, err := listStoreAll(fsys, path)
	if err != nil {
		return Layout{}, err
	}
	segs := ls.live
	l := Layout{Superseded: ls.superseded, Temp: ls.temps, Unrecognized: ls.unrecognized}
	for _, s := range segs {
		l.Segments = append(l.Segments, s.path)
	}
	exists := func(p string) string {
		if _, err := fsys.Lstat(p); err == nil {
			return p
		}
		return ""
	}
	l.Active = exists(path)
	l.Dead = exists(path + deadSuffix)
	l.Quarantine = exists(path + quarantineSuffix)
	l.Lock = exists(path + lockSuffix)
	return l, nil
}

type segment struct {
	path   string
	lo, hi uint64
	rev    uint64 // 0 for a sealed segment, else the rewrite's sequence number
	size   int64
}

// seq is the highest sequence number in the segment's name.
func (s segment) seq() uint64 { return max(s.hi, s.rev) }

// segmentPath names a segment of the range lo-hi with no rev: what a seal
// or a requeue makes of one sequence number (lo = hi), or what an earlier
// version named a replay's output.
func segmentPath(path string, lo, hi uint64) string {
	return fmt.Sprintf("%s%s%016d-%016d", path, segInfix, lo, hi)
}

// rewritePath names the segment that replaces segments lo..hi, rewritten
// under the fresh sequence number rev.
func rewritePath(path string, lo, hi, rev uint64) string {
	return fmt.Sprintf("%s%s%016d-%016d.%016d", path, segInfix, lo, hi, rev)
}

// maxSeq bounds the sequence counter: numbers at or past it are never
// given out, so the counter cannot wrap to a number that sorts before
// every segment or to a rev of 0. At a million seals a second it lasts
// 290,000 years: a ledger's next at it, or a name past it, is damage (see
// startSeq and parseSegmentName).
const maxSeq = 1<<63 - 1

// errSeqExhausted fails a seal or a rewrite once the counter is at maxSeq.
var errSeqExhausted = errors.New("syncbreaker: segment sequence numbers exhausted; the store's files need a repair by hand")

// takeSeq gives out the next sequence number, never the same one twice,
// or fails with errSeqExhausted.
func (s *Store) takeSeq() (uint64, error) {
	for {
		n := s.nextSeq.Load()
		if n >= maxSeq {
			return 0, errSeqExhausted
		}
		if s.nextSeq.CompareAndSwap(n, n+1) {
			return n, nil
		}
	}
}

// startSeq returns where the sequence counter starts at open: past every
// number the ledger's next says was given out, the ledger's names use and
// the segments' names use (see takeSeq), so none is given out twice. A
// next at maxSeq is ignored, with a warning, and the names decide: a store
// whose counter ran out (it cannot by counting) works again after a
// reopen. Names never reach maxSeq (parseSegmentName refuses them); the
// clamp keeps the counter from wrapping all the same.
func (s *Store) startSeq(l ledgerFile, segs []segment) uint64 {
	next := uint64(1)
	if l.Next >= maxSeq {
		s.log.Warn("syncbreaker: ledger's sequence counter is beyond its range; numbering goes on from the files' names", "next", l.Next)
	} else {
		next = max(next, l.Next)
	}
	after := func(seq uint64) {
		next = max(next, min(seq, maxSeq-1)+1)
	}
	for name := range l.Segments {
		if _, rest, ok := strings.Cut(name, segInfix); ok {
			if lo, hi, rev, ok := parseSegmentName(rest); ok {
				after(max(lo, hi, rev))
			}
		}
	}
	for _, seg := range segs {
		after(seg.seq())
	}
	return next
}

// parseSegmentName parses what follows P.seg. in a segment's name.
func parseSegmentName(s string) (lo, hi, rev uint64, ok bool) {
	s, revStr, hasRev := strings.Cut(s, ".")
	a, b, found := strings.Cut(s, "-")
	if !found {
		return 0, 0, 0, false
	}
	lo, err1 := strconv.ParseUint(a, 10, 64)
	hi, err2 := strconv.ParseUint(b, 10, 64)
	var err3 error
	if hasRev {
		rev, err3 = strconv.ParseUint(revStr, 10, 64)
		if rev == 0 {
			err3 = strconv.ErrSyntax
		}
	}
	// No name the store gives out reaches maxSeq: one that does is not
	// its own, and would leave the counter nowhere to go.
	if err1 != nil || err2 != nil || err3 != nil || lo > hi || hi >= maxSeq || rev >= maxSeq {
		return 0, 0, 0, false
	}
	return lo, hi, rev, true
}

// listStore returns the live segments in replay order, the superseded
// ones, and temp files. Only regular files count as segments: a FIFO or a
// directory under a segment's name is never opened.
func listStore(fsys fsx.FS, path string) (live []segment, superseded, temps []string, err error) {
	ls, err := listStoreAll(fsys, path)
	return ls.live, ls.superseded, ls.temps, err
}

// storeListing is what listStoreAll finds in a store's directory.
type storeListing struct {
	live              []segment
	superseded, temps []string
	unrecognized      []string // see Layout.Unrecognized
}

// listStoreAll is listStore that also returns the files named like
// segments that are not one.
func listStoreAll(fsys fsx.FS, path string) (storeListing, error) {
	var ls storeListing
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	entries, err := fsys.ReadDir(dir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return ls, nil
		}
		return ls, fmt.Errorf("syncbreaker: list store: %w", err)
	}
	var all []segment
	for _, e := range entries {
		name := e.Name()
		switch {
		case strings.HasPrefix(name, base+tmpInfix):
			ls.temps = append(ls.temps, filepath.Join(dir, name))
		case strings.HasPrefix(name, base+segInfix):
			lo, hi, rev, ok := parseSegmentName(name[len(base+segInfix):])
			if !ok || !e.Type().IsRegular() {
				ls.unrecognized = append(ls.unrecognized, filepath.Join(dir, name))
				continue
			}
			info, err := e.Info()
			if err != nil {
				continue // removed meanwhile
			}
			all = append(all, segment{path: filepath.Join(dir, name), lo: lo, hi: hi, rev: rev, size: info.Size()})
		}
	}
	slices.SortFunc(all, func(a, b segment) int {
		return cmp.Or(cmp.Compare(a.hi, b.hi), cmp.Compare(b.lo, a.lo), cmp.Compare(b.rev, a.rev)) // wider range, then newer rewrite, first
	})
	for i, s := range all {
		if supersededBy(s, all, i) {
			ls.superseded = append(ls.superseded, s.path)
			continue
		}
		ls.live = append(ls.live, s)
	}
	return ls, nil
}

// supersededBy reports whether another segment's range contains s's: a
// wider one, or the same one rewritten later.
func supersededBy(s segment, all []segment, self int) bool {
	for j, o := range all {
		if j != self && o.lo <= s.lo && s.hi <= o.hi && (o.lo != s.lo || o.hi != s.hi || o.rev > s.rev) {
			return true
		}
	}
	return false
}
