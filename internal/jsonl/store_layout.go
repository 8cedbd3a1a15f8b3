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
}

// Files lists the files of the store at path without opening or
// locking it; it is safe while a daemon holds the store.
func Files(path string) (Layout, error) {
	var fsys fsx.OS
	segs, superseded, temps, err := listStore(fsys, path)
	if err != nil {
		return Layout{}, err
	}
	l := Layout{Superseded: superseded, Temp: temps}
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
	if err1 != nil || err2 != nil || err3 != nil || lo > hi {
		return 0, 0, 0, false
	}
	return lo, hi, rev, true
}

// listStore returns the live segments in replay order, the superseded
// ones, and temp files. Only regular files count as segments: a FIFO or a
// directory under a segment's name is never opened.
func listStore(fsys fsx.FS, path string) (live []segment, superseded, temps []string, err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	entries, err := fsys.ReadDir(dir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil, nil, nil
		}
		return nil, nil, nil, fmt.Errorf("syncbreaker: list store: %w", err)
	}
	var all []segment
	for _, e := range entries {
		name := e.Name()
		switch {
		case strings.HasPrefix(name, base+tmpInfix):
			temps = append(temps, filepath.Join(dir, name))
		case strings.HasPrefix(name, base+segInfix) && e.Type().IsRegular():
			lo, hi, rev, ok := parseSegmentName(name[len(base+segInfix):])
			if !ok {
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
			superseded = append(superseded, s.path)
			continue
		}
		live = append(live, s)
	}
	return live, superseded, temps, nil
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
