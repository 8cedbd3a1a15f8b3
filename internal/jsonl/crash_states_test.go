package jsonl

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// The crash-state explorer.
//
// Each scripted workload (the fault sweep's, and a few more below) runs
// once on a crashFS, a file system in memory behind the store's seam that
// records every create, write, truncate, fsync, rename, remove and
// directory fsync, in order. After every operation k (and before the
// first), the explorer rebuilds, from the log alone, on-disk states a power
// loss there may leave:
//
//   - what is durable: the names the last directory fsync at or before k
//     made durable, each holding its file's content at its last fsync;
//   - on top of it, what is not: each write since its file's last fsync
//     kept, dropped or cut, each such truncate kept or dropped, each
//     directory operation since the last directory fsync kept or undone.
//
// The variants at a point, as reproductions name them: kept (everything
// kept: what kill -9 leaves), lost (only what is durable), names-only
// (directory operations kept, unsynced data dropped), data-only (the
// reverse), cut@N:B (write N cut to its first B bytes, for B the first
// byte, the middle and the last but one; the later writes and truncates of
// that file dropped, everything else kept), drop@N (write or truncate N
// alone dropped: a hole when later writes are kept), undo@N,M (those
// directory operations undone, everything else kept; every subset is tried
// while there are at most crashDirSubsets of them, with "+lost" the
// unsynced data dropped too; past that each one alone), upto@N (directory
// operations from N on undone: a journal that committed in order).
// Variants that build the same files are one state.
//
// Recovery is explored too: for a SyncAlways workload, at every point where
// a directory operation is not durable yet, the store is opened on what a
// process crash (kill -9) there leaves, with what was not durable still
// not durable, and power losses during that recovery are explored the same
// way (traces named workload~kill<k>).
//
// Each distinct state is opened in a crashFS of its own with the workload's
// config (states that differ only in temp files, which the store removes
// unread, are opened once), its dead letters read and everything pending
// replayed, fn accepting all. The oracle, at point k and for the variant:
//
//   - open: Open never fails (nor the Replay after it);
//   - lost: every record acknowledged by k (its Append returned nil) and
//     not accepted by fn by k is pending or dead-lettered. Under SyncAlways
//     that is every such record. Under SyncInterval and SyncNever, only
//     those durable by k: fsynced in the file it was written to, in the
//     active file when Close returned, or seen by a Replay that returned
//     nil; the rest is the unsynced window these policies trade away. In
//     the kept variant (a process crash) every policy keeps them all;
//   - order: pending records, by first appearance in replay order, keep
//     their append order; the records RequeueDead moved keep theirs among
//     themselves (it replays them before the active file, as documented);
//   - attempts: no copy of a record has fewer Attempts than its floor at k:
//     what fn saw when it last had it, or what a Replay that returned nil
//     recorded (one more for a refusal); RequeueDead resets it to zero, as
//     it documents;
//   - repeats: a record fn accepted by k is pending again only if its
//     settling was neither promised by k (the Replay that accepted it
//     returned nil, or the store went on from a ledger whose mark covers
//     its line) nor durable at k (its source segment durably gone, or
//     covered by the durable ledger). That is the README's bound: the
//     records settled since the last checkpoint, those behind a record
//     that stays pending, and the one in flight. A segment whose own
//     content is not durable (sealed under SyncNever) is exempt: a power
//     loss may change it so that no mark matches it, which means
//     re-delivery;
//   - stats: Stats().PendingRecords after Open equals what the Replay
//     delivers.
//
// A failure belongs to a class (check, workload, the operation at k by
// kind, file and phase, and the variant's kind); each class fails the test
// with its first reproduction, which -crashstates.case replays with the
// operations, files and records logged. -short tries fewer variants and a
// quarter of the recovery points. TestCrashStatesRegressions keeps the
// states that found bugs, rebuilt by hand.
var crashCaseFlag = flag.String("crashstates.case", "",
	"run one crash state, workload/k/variant as reported, and log its operations and files")

// crashStoreDir is the directory of every crashFS store: it exists only in
// memory.
func crashStoreDir() string {
	dir, err := filepath.Abs(string(filepath.Separator) + "crashstates")
	if err != nil {
		panic(err)
	}
	return dir
}

// crashWorkloads are the fault sweep's workloads and a few more: the
// policies the sweep leaves out, a longer drain over several segments, and
// recovery of a store a drain left with a ledger.
func crashWorkloads() []sweepWorkload {
	const day = 24 * time.Hour
	interval := Config{Sync: SyncInterval, SyncInterval: day}
	with := func(c Config, f func(*Config)) Config { f(&c); return c }
	respill := func(r *sweepRun) {
		r.appendN(0, 5)
		r.replay("replay 1", r.failThirdRespill("replay 1"))
		r.appendN(5, 6)
		r.replay("replay 2", r.failThirdRespill("replay 2"))
	}
	longDrain := func(r *sweepRun) {
		r.appendN(0, 7)
		r.replay("replay 1", r.failThirdRespill("replay 1"))
		r.appendN(7, 9)
		r.replay("replay 2", func(i int, rec Record) error {
			if i == 1 {
				return fmt.Errorf("poison: %w", ErrDeadLetter)
			}
			return r.failThirdRespill("replay 2")(i, rec)
		})
		r.requeue("requeue")
		r.replay("replay 3", func(int, Record) error { return nil })
	}
	return append(sweepWorkloads(),
		sweepWorkload{name: "seal-never", cfg: Config{Sync: SyncNever, SegmentBytes: 250, MaxBytes: 4096},
			steps: func(r *sweepRun) { r.appendN(0, 5) }},
		sweepWorkload{name: "replay-respill-interval", cfg: with(interval, func(c *Config) { c.MaxBytes = 4096 }), steps: respill},
		sweepWorkload{name: "checkpoint-interval", cfg: with(interval, func(c *Config) { c.MaxBytes = 8192; c.checkpointEvery = time.Second }),
			allowDead: true, steps: (*sweepRun).checkpointRounds},
		// Two records a segment, a checkpoint after nearly every record,
		// re-spills, a dead letter requeued, three rounds.
		sweepWorkload{name: "long-drain-always", cfg: Config{SegmentBytes: 250, MaxBytes: 16384, checkpointEvery: time.Second},
			allowDead: true, steps: longDrain},
		sweepWorkload{name: "long-drain-never", cfg: Config{Sync: SyncNever, SegmentBytes: 250, MaxBytes: 16384, checkpointEvery: time.Second},
			allowDead: true, steps: longDrain},
		// The active file's ledger entry, written after every fsync.
		sweepWorkload{name: "active-entry-always", cfg: Config{MaxBytes: 8192, activeEntryEvery: 1},
			steps: func(r *sweepRun) {
				r.appendN(0, 4)
				r.replay("replay 1", r.failThirdRespill("replay 1"))
				r.appendN(4, 6)
			}},
		// Records handled after their round: removed by the next drain
		// without delivery, never before SettleLate, repeated only while
		// no durable ledger holds the tombstone.
		sweepWorkload{name: "late-settle", cfg: Config{MaxBytes: 8192, checkpointEvery: time.Second},
			steps: func(r *sweepRun) {
				r.appendN(0, 4)
				var late []string
				r.replay("replay 1", func(i int, rec Record) error {
					if i%2 == 1 {
						late = append(late, rec.ID)
						return errors.New("timed out")
					}
					return nil
				})
				r.settleLate("settle late 1", late[0])
				r.appendN(4, 5)
				r.replay("replay 2", func(int, Record) error { return errors.New("refused") })
				r.settleLate("settle late 2", late[1])
				r.replay("replay 3", func(int, Record) error { return nil })
			}},
		sweepWorkload{name: "recovery-ledger", cfg: Config{MaxBytes: 8192, checkpointEvery: time.Second}, seed: seedDrainLeftovers,
			steps: recoverySteps},
	)
}

// seedDrainLeftovers leaves what a crash in the middle of a second drain
// may leave: a segment the first drain wrote (1-2) beside one of its
// sources it had not removed yet (2-2, superseded), a segment half
// settled by the ledger (3-3), a ledger entry for a segment that is gone,
// a temp file of the interrupted rewrite, and an active file.
func seedDrainLeftovers(t *testing.T, path string) sweepSeed {
	t.Helper()
	at := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
	rec := func(n, attempts int) Record {
		return Record{ID: fmt.Sprintf("seed-%02d", n), Payload: sweepPayload("seed", n),
			EnqueuedAt: at.Add(time.Duration(n) * time.Second), Attempts: attempts}
	}
	seg3 := encodeLines(rec(3, 0), rec(4, 0), rec(5, 0), rec(6, 0))
	settled := int64(len(encodeLines(rec(3, 0), rec(4, 0))))
	ledger, err := json.Marshal(ledgerFile{Version: ledgerVersion, Segments: map[string]mark{
		filepath.Base(segmentPath(path, 3, 3)): {Size: int64(len(seg3)), First: "seed-03", Off: settled, Lines: 2},
		filepath.Base(segmentPath(path, 9, 9)): {Size: 100, First: "seed-99", Off: 50, Lines: 1},
	}})
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{
		segmentPath(path, 1, 2):    encodeLines(rec(0, 1), rec(2, 1)),
		segmentPath(path, 2, 2):    encodeLines(rec(1, 0), rec(2, 0)), // rec 1 was delivered; 1-2 supersedes it
		segmentPath(path, 3, 3):    seg3,
		path + ledgerSuffix:        ledger,
		path + tmpInfix + "0022bb": encodeLines(rec(3, 1)),
		path:                       encodeLines(rec(7, 0), rec(8, 0)),
	}
	for p, b := range files {
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return sweepSeed{}
}

// crashRec is the oracle's knowledge of one record, by crash point: a
// record is acknowledged at every point k >= ackAt, accepted by fn at every
// k >= acceptAt, durable at every k >= durableAt (-1: never).
type crashRec struct {
	id, payload string
	seq         int  // append order; seed records first, in replay order
	requeued    bool // RequeueDead moved it at some point
	ino, wrote  int  // the file and operation that appended it (wrote -1: seed)
	ackAt       int
	acceptAt    int
	settledAt   int  // the Replay that accepted it returned nil
	late        bool // settled late (SettleLate), not by fn
	durableAt   int
	src         []crashLine  // where the delivery fn accepted read it from
	floors      []crashFloor // Attempts floors, in order of at
	ackedStep   string
}

// crashFloor: from crash point at on, every copy of the record has at
// least min Attempts.
type crashFloor struct{ at, min int }

func (r *crashRec) floor(k int) int {
	f := 0
	for _, b := range r.floors {
		if b.at <= k {
			f = b.min
		}
	}
	return f
}

// crashBook follows a workload through sweepObserver and keeps the
// oracle's records.
type crashBook struct {
	t          *testing.T
	fs         *crashFS
	recs       []*crashRec
	byID       map[string]*crashRec
	appendFrom int
	located    []crashLine // where the record being delivered is
	seen       []crashSeenInRound
	// checkpoints are the ledgers the store wrote and then went on from,
	// in order; ledger is the last one's content.
	checkpoints []crashCheckpoint
	ledger      []byte
}

// crashCheckpoint is a ledger the store had written by operation at: it
// promised that a crash from then on repeats none of the lines its marks
// cover.
type crashCheckpoint struct {
	at    int
	marks map[string]mark
	inos  map[string]int // the segments it speaks of, as they were
}

// noteLedger records a new checkpoint if the ledger changed since the last
// one.
func (b *crashBook) noteLedger() {
	cur := b.fs.content("p.jsonl" + ledgerSuffix)
	if bytes.Equal(cur, b.ledger) {
		return
	}
	b.ledger = cur
	var l ledgerFile
	if json.Unmarshal(cur, &l) != nil || l.Version != ledgerVersion {
		return
	}
	b.fs.mu.Lock()
	inos := maps.Clone(b.fs.ns)
	b.fs.mu.Unlock()
	b.checkpoints = append(b.checkpoints, crashCheckpoint{at: len(b.fs.recorded()), marks: l.Segments, inos: inos})
}

// covered reports whether a checkpoint made by crash point k covers loc.
func (b *crashBook) covered(loc crashLine, k int) bool {
	for _, c := range b.checkpoints {
		if c.at <= k && c.inos[loc.name] == loc.ino && c.marks[loc.name].Off >= loc.end {
			return true
		}
	}
	return false
}

type crashSeenInRound struct {
	rec      *crashRec
	attempts int
	accepted bool
}

func newCrashBook(t *testing.T, fs *crashFS) *crashBook {
	return &crashBook{t: t, fs: fs, byID: map[string]*crashRec{}}
}

func (b *crashBook) add(id, payload string) *crashRec {
	if r := b.byID[id]; r != nil {
		return r
	}
	r := &crashRec{id: id, payload: payload, seq: len(b.recs), wrote: -1, ackAt: -1, acceptAt: -1, settledAt: -1, durableAt: -1}
	b.recs = append(b.recs, r)
	b.byID[id] = r
	return r
}

// seedRecords learns the records a workload's seed left in the crashFS,
// in replay order: pending ones are acknowledged and durable from the
// start; ones below a ledger mark count as accepted before the start, so
// they may never come back once the ledger is durable.
func (b *crashBook) seedRecords(path string) {
	t := b.t
	segs, _, _, err := listStore(b.fs, path)
	if err != nil {
		t.Fatal(err)
	}
	l, _ := loadLedger(b.fs, path+ledgerSuffix)
	marks := l.Segments
	b.noteLedger()
	scan := func(name string, settled int64) {
		ino := b.fs.ns[name]
		err := scanRecords(bytes.NewReader(b.fs.data[ino]), maxLineSize(0), crashModTime, nil, func(e *ScanEntry, _ []byte) error {
			if e.Problem != ProblemNone {
				return nil
			}
			r := b.add(e.Record.ID, string(e.Record.Payload))
			r.ackAt, r.durableAt, r.ackedStep = 0, 0, "seed"
			r.floors = append(r.floors, crashFloor{at: 0, min: e.Record.Attempts})
			if e.Offset < settled {
				r.acceptAt = 0
				r.src = append(r.src, crashLine{name: name, ino: ino, end: e.Offset + e.Length})
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, seg := range segs {
		name := filepath.Base(seg.path)
		m, ok, err := matchMark(b.fs, seg, marks[name])
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			m = mark{}
		}
		scan(name, m.Off)
	}
	for _, name := range []string{filepath.Base(path), filepath.Base(path) + deadSuffix} {
		if _, ok := b.fs.ns[name]; ok {
			scan(name, 0)
		}
	}
}

func (b *crashBook) appendStart([]byte) { b.appendFrom = b.fs.ops() }

// appendDone learns the record's ID from the line the Append wrote.
func (b *crashBook) appendDone(_ []byte, err error) {
	ops := b.fs.recorded()
	for i := b.appendFrom; i < len(ops); i++ {
		op := ops[i]
		if op.kind != crashWrite || op.name != "p.jsonl" {
			continue
		}
		rec, _, problem := decodeLine(bytes.TrimSuffix(op.data, []byte("\n")))
		if problem != ProblemNone {
			b.t.Fatalf("append wrote a line that is not a record (%s)", problem)
		}
		r := b.add(rec.ID, string(rec.Payload))
		r.ino, r.wrote, r.ackedStep = op.ino, i, op.step
		if err == nil {
			r.ackAt = len(ops)
		}
		return
	}
}

func (b *crashBook) delivered(rec Record) {
	// The store hands over the next record only once a checkpoint it
	// started is done.
	b.noteLedger()
	r := b.byID[rec.ID]
	if r == nil {
		b.t.Fatalf("replay delivered a record the workload never appended: %s", rec.ID)
	}
	// The Attempts fn sees were read from a segment: a first delivery's
	// zero, or what an earlier Replay that returned nil made durable.
	r.floors = append(r.floors, crashFloor{at: b.fs.ops(), min: rec.Attempts})
	b.located = b.fs.locate(rec.ID)
	b.seen = append(b.seen, crashSeenInRound{rec: r, attempts: rec.Attempts})
}

func (b *crashBook) verdict(rec Record, err error) {
	if err != nil {
		return
	}
	r := b.byID[rec.ID]
	r.acceptAt = b.fs.ops()
	r.src = b.located
	if len(r.src) == 0 {
		b.t.Errorf("record %s, accepted by fn, is in no segment: the repeat check cannot follow it", rec.ID)
	}
	b.seen[len(b.seen)-1].accepted = true
}

// roundDone: a Replay that returned nil made every outcome durable: the
// records it kept and dead-lettered, with Attempts+1 for each refusal
// (every error the workloads return is one).
func (b *crashBook) roundDone(err error) {
	seen := b.seen
	b.seen = nil
	if err != nil {
		return
	}
	b.noteLedger()
	at := b.fs.ops()
	for _, s := range seen {
		if s.accepted {
			s.rec.settledAt = at
			continue
		}
		s.rec.floors = append(s.rec.floors, crashFloor{at: at, min: s.attempts + 1})
		if s.rec.durableAt < 0 || s.rec.durableAt > at {
			s.rec.durableAt = at
		}
	}
}

// requeueStart: RequeueDead resets the Attempts of what it moves.
func (b *crashBook) requeueStart() {
	at := b.fs.ops()
	dead := b.fs.content("p.jsonl" + deadSuffix)
	_ = scanRecords(bytes.NewReader(dead), maxLineSize(0), crashModTime, nil, func(e *ScanEntry, _ []byte) error {
		if r := b.byID[e.Record.ID]; e.Problem == ProblemNone && r != nil {
			r.requeued = true
			r.floors = append(r.floors, crashFloor{at: at, min: 0})
		}
		return nil
	})
}

func (b *crashBook) requeueDone(error) {}

// lateSettled: the record counts as accepted from here (the store may
// remove it), and its tombstone promises nothing until a ledger holding it
// is durable (see mayRepeat).
func (b *crashBook) lateSettled(id string) {
	r := b.byID[id]
	r.acceptAt, r.late = b.fs.ops(), true
	r.src = b.fs.locate(id)
}

// at returns the book as it stood at crash point k, for a trace that
// starts there: everything it knew then happened at point 0.
func (b *crashBook) at(k int, fs *crashFS) *crashBook {
	out := &crashBook{t: b.t, fs: fs, byID: map[string]*crashRec{}}
	when := func(at int) int {
		if at >= 0 && at <= k {
			return 0
		}
		return -1
	}
	for _, r := range b.recs {
		c := *r
		c.ackAt, c.acceptAt, c.settledAt = when(r.ackAt), when(r.acceptAt), when(r.settledAt)
		c.durableAt = c.ackAt
		c.floors = []crashFloor{{at: 0, min: r.floor(k)}}
		out.recs = append(out.recs, &c)
		out.byID[c.id] = &c
	}
	for _, cp := range b.checkpoints {
		if cp.at <= k {
			cp.at = 0
			out.checkpoints = append(out.checkpoints, cp)
		}
	}
	return out
}

// finish makes each appended record durable at the first fsync of the file
// it was written to.
func (b *crashBook) finish(ops []crashOp) {
	for _, r := range b.recs {
		if r.wrote < 0 {
			continue
		}
		for i := r.wrote + 1; i < len(ops); i++ {
			if ops[i].kind == crashFsync && ops[i].ino == r.ino {
				if r.durableAt < 0 || i+1 < r.durableAt {
					r.durableAt = i + 1
				}
				break
			}
		}
	}
}

// crashTrace is one workload's recorded run: the files it started from
// (all durable), by name and inode, and the operations it made.
type crashTrace struct {
	w        *sweepWorkload
	name     string // the workload's, or for a recovery trace workload~kill<k>
	path     string
	initNS   map[string]int
	initData map[int][]byte
	ops      []crashOp
	from     int // the first crash point to explore
	book     *crashBook
}

func recordCrashTrace(t *testing.T, w *sweepWorkload) *crashTrace {
	t.Helper()
	dir := crashStoreDir()
	path := filepath.Join(dir, "p.jsonl")
	seed := map[string][]byte{}
	if w.seed != nil {
		real := t.TempDir()
		w.seed(t, filepath.Join(real, "p.jsonl"))
		entries, err := os.ReadDir(real)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			if !e.Type().IsRegular() || strings.HasSuffix(e.Name(), lockSuffix) {
				continue
			}
			b, err := os.ReadFile(filepath.Join(real, e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			seed[e.Name()] = b
		}
	}
	cfs := newCrashFS(dir, seed, true)
	initNS, initData := maps.Clone(cfs.ns), maps.Clone(cfs.data)
	script := &sweepScript{}
	cfs.step = script.currentStep
	book := newCrashBook(t, cfs)
	book.seedRecords(path)
	cfg := w.cfg
	cfg.fs, cfg.now = cfs, sweepClock()
	if cfg.checkpointEvery == 0 {
		cfg.checkpointEvery = 1000 * time.Hour // only the checkpoint workloads write the ledger
	}
	r := &sweepRun{w: w, ctx: context.Background(), script: script,
		must: map[string]int{}, ackedAt: map[string]string{}, obs: book}
	script.setStep("open")
	s, err := Open(path, cfg)
	if err != nil {
		t.Fatalf("workload %s: open: %v", w.name, err)
	}
	r.s = s
	w.steps(r)
	// Each round's result agrees with the store (see checkCounts).
	for _, e := range r.countErrs {
		t.Errorf("workload %s: counts: %s", w.name, e)
	}
	script.setStep("close")
	if err := s.Close(); err != nil {
		t.Fatalf("workload %s: close: %v", w.name, err)
	}
	ops := cfs.recorded()
	book.finish(ops)
	// Close fsyncs the active file: from then on, what it holds is
	// durable whatever the policy.
	for _, r := range book.recs {
		if r.wrote >= 0 && r.ino == cfs.ns["p.jsonl"] && (r.durableAt < 0 || r.durableAt > len(ops)) {
			r.durableAt = len(ops)
		}
	}
	return &crashTrace{w: w, name: w.name, path: path, initNS: initNS, initData: initData, ops: ops, book: book}
}

// recoveryTrace is the recovery after a process crash (kill -9) at point
// k of tr: the store opened on what the crash left, whose
// operations since their last fsync are still not durable. Its log starts
// with those operations, replayed in order onto the durable state at k,
// and its crash points are those of the recovery. Its book is tr's as it
// stood at k: the records acknowledged and not accepted then must all
// survive (tr is a SyncAlways workload), and what the store had promised
// settled must not come back.
func (tr *crashTrace) recoveryTrace(t *testing.T, w *crashWalk) *crashTrace {
	t.Helper()
	cfs := newCrashFS(crashStoreDir(), nil, true)
	for name, ino := range w.durable {
		cfs.ns[name], cfs.data[ino] = ino, bytes.Clone(w.synced[ino])
	}
	for ino, b := range w.synced {
		if _, ok := cfs.data[ino]; !ok {
			cfs.data[ino] = bytes.Clone(b)
		}
	}
	initNS, initData := maps.Clone(cfs.ns), maps.Clone(cfs.data)
	for _, op := range tr.ops {
		cfs.next = max(cfs.next, op.ino)
	}
	var pending []int
	for _, ops := range w.pendData {
		pending = append(pending, ops...)
	}
	pending = append(pending, w.pendDir...)
	slices.Sort(pending)
	for _, i := range pending {
		cfs.replay(tr.ops[i])
	}
	from := cfs.ops() + 1
	script := &sweepScript{}
	cfs.step = script.currentStep
	script.setStep("recovery open")
	cfg := tr.w.cfg
	cfg.fs, cfg.now = cfs, sweepClock()
	if cfg.checkpointEvery == 0 {
		cfg.checkpointEvery = 1000 * time.Hour
	}
	s, err := Open(tr.path, cfg)
	if err != nil {
		t.Fatalf("%s: open after a process crash at %d: %v", tr.name, w.k, err)
	}
	ops := cfs.recorded()
	// Not closed: the recovery is Open's work; Close's own operations are
	// explored in every workload.
	_ = s
	book := tr.book.at(w.k, cfs)
	return &crashTrace{w: tr.w, name: fmt.Sprintf("%s~kill%d", tr.name, w.k), path: tr.path,
		initNS: initNS, initData: initData, ops: ops, from: from, book: book}
}

// crashWalk is the file system's state after the first k operations, as
// durability sees it.
type crashWalk struct {
	ops      []crashOp
	k        int
	live     map[string]int // names now
	durable  map[string]int // names the last directory fsync made durable
	content  map[int][]byte // inode -> content now
	synced   map[int][]byte // inode -> content at its last fsync
	pendData map[int][]int  // inode -> its writes and truncates since that fsync
	pendDir  []int          // directory operations since the last directory fsync
}

func newCrashWalk(tr *crashTrace) *crashWalk {
	w := &crashWalk{ops: tr.ops, live: maps.Clone(tr.initNS), durable: maps.Clone(tr.initNS),
		content: map[int][]byte{}, synced: map[int][]byte{}, pendData: map[int][]int{}}
	for ino, b := range tr.initData {
		w.content[ino], w.synced[ino] = bytes.Clone(b), bytes.Clone(b)
	}
	return w
}

// step applies operation w.k and moves to the next point.
func (w *crashWalk) step() {
	i := w.k
	op := w.ops[i]
	w.k++
	switch op.kind {
	case crashCreate:
		w.live[op.name] = op.ino
		if _, ok := w.content[op.ino]; !ok {
			// (A recovery trace replays the create of a file whose
			// content was already fsynced: it keeps it.)
			w.content[op.ino], w.synced[op.ino] = nil, nil
		}
		w.pendDir = append(w.pendDir, i)
	case crashWrite:
		w.content[op.ino] = writeAt(w.content[op.ino], op.data, op.off)
		w.pendData[op.ino] = append(w.pendData[op.ino], i)
	case crashTruncate:
		w.content[op.ino] = resize(w.content[op.ino], op.size)
		w.pendData[op.ino] = append(w.pendData[op.ino], i)
	case crashFsync:
		w.synced[op.ino] = bytes.Clone(w.content[op.ino])
		delete(w.pendData, op.ino)
	case crashRename:
		delete(w.live, op.name)
		w.live[op.to] = op.ino
		w.pendDir = append(w.pendDir, i)
	case crashRemove:
		delete(w.live, op.name)
		w.pendDir = append(w.pendDir, i)
	case crashSyncDir:
		w.durable = maps.Clone(w.live)
		w.pendDir = nil
	}
}

// crashVariant is one way the unsynced operations at a point can end.
type crashVariant struct {
	kind     string // kept, lost, names-only, data-only, cut, drop, undo, upto
	op       int    // the operation (index) cut, dropped, or cut off at (upto)
	cut      int    // bytes of op kept, for cut
	undo     []int  // the directory operations undone, for undo
	lostData bool   // undo: the unsynced data is dropped too
}

func (v crashVariant) String() string {
	switch v.kind {
	case "cut":
		return fmt.Sprintf("cut@%d:%d", v.op+1, v.cut)
	case "drop", "upto":
		return fmt.Sprintf("%s@%d", v.kind, v.op+1)
	case "undo":
		var ops []string
		for _, i := range v.undo {
			ops = append(ops, strconv.Itoa(i+1))
		}
		s := "undo@" + strings.Join(ops, ",")
		if v.lostData {
			s += "+lost"
		}
		return s
	}
	return v.kind
}

func parseCrashVariant(s string) (crashVariant, bool) {
	kind, rest, found := strings.Cut(s, "@")
	if !found {
		return crashVariant{kind: kind}, slices.Contains([]string{"kept", "lost", "names-only", "data-only"}, kind)
	}
	v := crashVariant{kind: kind}
	num := func(s string) (int, bool) {
		n, err := strconv.Atoi(s)
		return n - 1, err == nil && n >= 1
	}
	var ok bool
	switch kind {
	case "cut":
		at, cut, _ := strings.Cut(rest, ":")
		v.op, ok = num(at)
		c, err := strconv.Atoi(cut)
		v.cut, ok = c, ok && err == nil
	case "drop", "upto":
		v.op, ok = num(rest)
	case "undo":
		rest, v.lostData = strings.CutSuffix(rest, "+lost")
		ok = true
		for _, f := range strings.Split(rest, ",") {
			i, good := num(f)
			v.undo, ok = append(v.undo, i), ok && good
		}
	}
	return v, ok
}

// crashDirSubsets is how many unsynced directory operations a point may
// have for every subset of them to be undone in turn; past it, each one
// is undone alone, and the journal-order cuts (upto) are tried.
const crashDirSubsets = 4

// variants lists the variants at the current point. Short mode keeps the
// middle cut of each write and the single undos.
func (w *crashWalk) variants(short bool) []crashVariant {
	vs := []crashVariant{{kind: "kept"}, {kind: "lost"}, {kind: "names-only"}, {kind: "data-only"}}
	reach := map[int]bool{}
	for _, ino := range w.live {
		reach[ino] = true
	}
	for _, ino := range w.durable {
		reach[ino] = true
	}
	var data []int
	for ino, ops := range w.pendData {
		if reach[ino] {
			data = append(data, ops...)
		}
	}
	slices.Sort(data)
	for _, i := range data {
		op := w.ops[i]
		if op.kind == crashWrite {
			n := len(op.data)
			cuts := []int{n / 2}
			if !short {
				cuts = []int{1, n / 2, n - 1}
			}
			last := 0
			for _, c := range cuts {
				if c > last && c < n {
					vs = append(vs, crashVariant{kind: "cut", op: i, cut: c})
					last = c
				}
			}
		}
		vs = append(vs, crashVariant{kind: "drop", op: i})
	}
	dirs := w.pendDir
	if short || len(dirs) > crashDirSubsets {
		for _, i := range dirs {
			vs = append(vs, crashVariant{kind: "undo", undo: []int{i}})
			if !short {
				vs = append(vs, crashVariant{kind: "upto", op: i})
			}
		}
		return vs
	}
	// Every subset but none (kept, names-only) and all (data-only, lost),
	// with the unsynced data kept and dropped.
	for mask := 1; mask < 1<<len(dirs)-1; mask++ {
		var undo []int
		for b, i := range dirs {
			if mask&(1<<b) != 0 {
				undo = append(undo, i)
			}
		}
		vs = append(vs, crashVariant{kind: "undo", undo: undo}, crashVariant{kind: "undo", undo: undo, lostData: true})
	}
	return vs
}

// has reports whether v applies at the current point (a reproduction
// names it).
func (w *crashWalk) has(v crashVariant) bool {
	for _, short := range []bool{false, true} {
		for _, x := range w.variants(short) {
			if x.String() == v.String() {
				return true
			}
		}
	}
	return false
}

// crashImage is a crash state: names, their files, and the files' content.
type crashImage struct {
	ns    map[string]int
	files map[string][]byte
}

// key identifies the state. With opened, it identifies what opening it
// shows instead: temp files are left out, since the store removes them
// unread (observe checks that it still does), so states that differ only
// in a temp file are opened once.
func (img crashImage) key(opened bool) [32]byte {
	h := sha256.New()
	for _, name := range slices.Sorted(maps.Keys(img.files)) {
		if opened && strings.Contains(name, tmpInfix) {
			continue
		}
		fmt.Fprintf(h, "%s\x00%d\x00", name, len(img.files[name]))
		h.Write(img.files[name])
	}
	var k [32]byte
	copy(k[:], h.Sum(nil))
	return k
}

// image builds the crash state variant v leaves at the current point.
func (w *crashWalk) image(v crashVariant) crashImage {
	keepDir := func(i int) bool {
		switch v.kind {
		case "lost", "data-only":
			return false
		case "undo":
			return !slices.Contains(v.undo, i)
		case "upto":
			return i < v.op
		}
		return true
	}
	ns := maps.Clone(w.durable)
	for _, i := range w.pendDir {
		if !keepDir(i) {
			continue
		}
		op := w.ops[i]
		switch op.kind {
		case crashCreate:
			ns[op.name] = op.ino
		case crashRename:
			// Each half of a rename is kept with it, even where an
			// undone operation before it moved the old name.
			if ns[op.name] == op.ino {
				delete(ns, op.name)
			}
			ns[op.to] = op.ino
		case crashRemove:
			if ns[op.name] == op.ino {
				delete(ns, op.name)
			}
		}
	}
	files := make(map[string][]byte, len(ns))
	for name, ino := range ns {
		b := bytes.Clone(w.synced[ino])
		for _, i := range w.pendData[ino] {
			op := w.ops[i]
			keep, cut := true, -1
			switch v.kind {
			case "lost", "names-only":
				keep = false
			case "undo":
				keep = !v.lostData
			case "drop":
				keep = i != v.op
			case "cut":
				if op.ino == w.ops[v.op].ino {
					keep = i <= v.op
					if i == v.op {
						cut = v.cut
					}
				}
			}
			switch {
			case !keep:
			case op.kind == crashTruncate:
				b = resize(b, op.size)
			case cut >= 0:
				b = writeAt(b, op.data[:cut], op.off)
			default:
				b = writeAt(b, op.data, op.off)
			}
		}
		files[name] = b
	}
	return crashImage{ns: ns, files: files}
}

// crashObs is what opening a crash state shows.
type crashObs struct {
	openErr, replayErr error
	readTemp           bool // the store read a temp file it did not write
	statsPending       int64
	removedLate        int64       // records the Replay removed as settled late, without delivering them
	pending, dead      []crashCopy // in replay order; dead-letter file order
}

type crashCopy struct {
	id       string
	attempts int
}

// observe opens img in a crashFS of its own with cfg, reads its dead
// letters and replays everything, accepting all.
func observe(img crashImage, cfg Config) crashObs {
	var o crashObs
	dir := crashStoreDir()
	cfs := newCrashFS(dir, img.files, false)
	// No checkpoints: this replay only reads what is pending.
	cfg.fs, cfg.now, cfg.checkpointEvery = cfs, sweepClock(), 1000*time.Hour
	s, err := Open(filepath.Join(dir, "p.jsonl"), cfg)
	if err != nil {
		o.openErr = err
		return o
	}
	// Not closed: Close would only fsync and write the ledger, and the
	// store holds nothing a crashFS does not (no goroutine, no lock).
	defer func() { o.readTemp = cfs.readTemp }()
	o.statsPending = s.Stats().PendingRecords
	_ = scanRecords(bytes.NewReader(cfs.content("p.jsonl"+deadSuffix)), maxLineSize(0), crashModTime, nil, func(e *ScanEntry, _ []byte) error {
		if e.Problem == ProblemNone {
			o.dead = append(o.dead, crashCopy{id: e.Record.ID, attempts: e.Record.Attempts})
		}
		return nil
	})
	res, err := s.Replay(context.Background(), func(_ context.Context, rec Record) error {
		o.pending = append(o.pending, crashCopy{id: rec.ID, attempts: rec.Attempts})
		return nil
	})
	o.replayErr = err
	o.removedLate = int64(res.Republished - len(o.pending)) // tombstones (see late_settle.go)
	return o
}

// crashFinding is one failed check of one crash state.
type crashFinding struct{ check, detail string }

// durableLedger returns the ledger as the last directory fsync and the
// ledger file's last fsync left it (empty if none).
func (w *crashWalk) durableLedger() ledgerFile {
	var l ledgerFile
	ino, ok := w.durable["p.jsonl"+ledgerSuffix]
	if !ok {
		return l
	}
	if json.Unmarshal(w.synced[ino], &l) != nil || l.Version != ledgerVersion {
		return ledgerFile{}
	}
	return l
}

// mayRepeat reports whether record r, accepted by fn, may be pending again
// at the walk's point: neither did the store promise it settled (its
// Replay returned nil, or a checkpoint covering it was done) nor did the
// model make its settling durable (its source segment gone, or covered by
// the durable ledger, or, settled late, its tombstone in the durable
// ledger).
func (w *crashWalk) mayRepeat(b *crashBook, r *crashRec, l ledgerFile) bool {
	marks := l.Segments
	if r.settledAt >= 0 && r.settledAt <= w.k || r.late && slices.Contains(l.Settled, r.id) {
		return false
	}
	for _, loc := range r.src {
		if w.durable[loc.name] != loc.ino {
			continue // removed or replaced, durably
		}
		if len(w.pendData[loc.ino]) > 0 {
			// The segment's own content is not durable (a seal under
			// SyncNever does not fsync), so the ledger's binding to it
			// (size, first ID) may fail: re-delivery.
			return true
		}
		if b.covered(loc, w.k) {
			continue
		}
		if m, ok := marks[loc.name]; !ok || m.Off < loc.end {
			return true
		}
	}
	return false
}

// check runs the oracle on one crash state.
func (tr *crashTrace) check(w *crashWalk, v crashVariant, img crashImage, o crashObs, ledger ledgerFile) []crashFinding {
	var out []crashFinding
	find := func(check, format string, args ...any) {
		out = append(out, crashFinding{check: check, detail: fmt.Sprintf(format, args...)})
	}
	if o.openErr != nil {
		find("open-failed", "Open failed: %v", o.openErr)
		return out
	}
	if o.replayErr != nil {
		find("replay-failed", "the Replay after Open failed: %v", o.replayErr)
	}
	if o.statsPending != int64(len(o.pending))+o.removedLate {
		find("stats", "Stats says %d records pending, the Replay delivered %d and removed %d settled late", o.statsPending, len(o.pending), o.removedLate)
	}
	k := w.k
	policy := tr.w.cfg.Sync
	present := map[string]bool{}
	for _, c := range slices.Concat(o.pending, o.dead) {
		present[c.id] = true
	}
	pending := map[string]bool{}
	for _, c := range o.pending {
		pending[c.id] = true
	}
	b := tr.book
	for _, r := range b.recs {
		acked := r.ackAt >= 0 && r.ackAt <= k
		accepted := r.acceptAt >= 0 && r.acceptAt <= k
		durable := policy == SyncAlways || v.kind == "kept" || r.durableAt >= 0 && r.durableAt <= k
		if acked && !accepted && durable && !present[r.id] {
			find("lost", "record %s (payload %q, acknowledged at %q) is neither pending nor dead-lettered; %s",
				r.id, r.payload, r.ackedStep, whereIs(img, r.id))
		}
		if accepted && pending[r.id] && !w.mayRepeat(b, r, ledger) {
			find("repeat", "record %s (payload %q), accepted by fn at operation %d, is pending again though its settling was promised or durable by then (its Replay returned nil, the store went on from a ledger covering it, or its segment was durably gone or covered)",
				r.id, r.payload, r.acceptAt)
		}
	}
	for _, c := range slices.Concat(o.pending, o.dead) {
		if r := b.byID[c.id]; r != nil {
			if f := r.floor(k); c.attempts < f {
				find("attempts", "record %s (payload %q) has Attempts %d, below the durable %d", r.id, r.payload, c.attempts, f)
			}
		}
	}
	first := map[string]bool{}
	last := map[bool]*crashRec{}
	for _, c := range o.pending {
		r := b.byID[c.id]
		if r == nil {
			find("unknown", "record %s was never appended", c.id)
			continue
		}
		if first[c.id] {
			continue
		}
		first[c.id] = true
		if prev := last[r.requeued]; prev != nil && prev.seq > r.seq {
			find("order", "record %s (payload %q) is replayed before %s (payload %q), appended earlier", prev.id, prev.payload, r.id, r.payload)
		}
		last[r.requeued] = r
	}
	return out
}

// whereIs says which files of a crash state hold a record's line.
func whereIs(img crashImage, id string) string {
	var in []string
	for _, name := range slices.Sorted(maps.Keys(img.files)) {
		if bytes.Contains(img.files[name], []byte(`"id":"`+id+`"`)) {
			in = append(in, sweepFileName(name))
		}
	}
	if len(in) == 0 {
		return "no file of the crash state holds its line"
	}
	return "the crash state holds its line in " + strings.Join(in, ", ")
}

// recoveryTraces returns the recovery traces of tr's crash points where
// a directory operation is not durable yet (those keep accepts): where a
// process crash leaves the recovery something to make durable in the right
// order.
func (tr *crashTrace) recoveryTraces(t *testing.T, keep func(k int) bool) []*crashTrace {
	var out []*crashTrace
	w := newCrashWalk(tr)
	for {
		if len(w.pendDir) > 0 && keep(w.k) {
			out = append(out, tr.recoveryTrace(t, w))
		}
		if w.k == len(tr.ops) {
			return out
		}
		w.step()
	}
}

// className is the workload's name in failure classes: recovery traces
// after a process crash at different points share one.
func (tr *crashTrace) className() string {
	name, _, _ := strings.Cut(tr.name, "~")
	if name != tr.name {
		name += "~recovery"
	}
	return name
}

// crashClassKey names a failure class: the check, the workload, the
// operation at the crash point (kind, file, phase) and the variant's kind.
func crashClassKey(check, workload string, op *crashOp, v crashVariant) string {
	if check == "stats" {
		// One cause wherever the crash: what open trusts of a file
		// whose content was not durable.
		return fmt.Sprintf("%s %s: any point, %s", check, workload, v.kind)
	}
	at := "before any operation"
	if op != nil {
		at = fmt.Sprintf("after %s %s during %s", op.kind, sweepOp{file: sweepFileName(op.name)}.kind(), sweepOp{step: op.step}.phase())
	}
	return fmt.Sprintf("%s %s: %s, %s", check, workload, at, v.kind)
}

type crashClass struct {
	key, repro string
	n          int
}

// crashTally counts what one workload explored.
type crashTally struct {
	points, states, opened int
}

// explore walks every crash point of tr and checks every variant.
// only, if not nil, limits it to one point and variant and logs them.
func (tr *crashTrace) explore(t *testing.T, short bool, only *crashCase) (crashTally, map[string]*crashClass) {
	var tally crashTally
	classes := map[string]*crashClass{}
	// walk visits each point's distinct states. It runs twice: to gather
	// the states to open (on every core), then to check each one against
	// what opening it showed; rebuilding a state is cheap.
	walk := func(visit func(w *crashWalk, v crashVariant, img crashImage)) {
		w := newCrashWalk(tr)
		for {
			if w.k >= tr.from && (only == nil || only.k == w.k) {
				vs := w.variants(short)
				if only != nil {
					if !w.has(only.v) {
						t.Fatalf("variant %s does not apply after operation %d", only.v, w.k)
					}
					vs = []crashVariant{only.v}
				}
				seen := map[[32]byte]bool{}
				for _, v := range vs {
					img := w.image(v)
					if key := img.key(false); !seen[key] {
						seen[key] = true
						visit(w, v, img)
					}
				}
			}
			if w.k == len(tr.ops) {
				break
			}
			w.step()
		}
	}
	var queue []crashImage
	queued := map[[32]byte]bool{}
	walk(func(_ *crashWalk, _ crashVariant, img crashImage) {
		if key := img.key(true); !queued[key] {
			queued[key] = true
			queue = append(queue, img)
		}
	})
	seen := observeAll(t, queue, tr.w.cfg)
	tally.opened = len(queue)
	lastK, ledger := -1, ledgerFile{}
	walk(func(w *crashWalk, v crashVariant, img crashImage) {
		if w.k != lastK {
			lastK, ledger = w.k, w.durableLedger()
			tally.points++
		}
		tally.states++
		o := seen[img.key(true)]
		findings := tr.check(w, v, img, o, ledger)
		if only != nil {
			tr.logCase(t, w, v, img, o, findings)
		}
		var op *crashOp
		if w.k > 0 {
			op = &tr.ops[w.k-1]
		}
		inState := map[string]bool{}
		for _, f := range findings {
			key := crashClassKey(f.check, tr.className(), op, v)
			if inState[key] {
				continue
			}
			inState[key] = true
			cl := classes[key]
			if cl == nil {
				at := "before any operation"
				if op != nil {
					at = fmt.Sprintf("after operation %d/%d = %s %s (%s)", w.k, len(tr.ops), op.kind, sweepFileName(op.name), op.step)
				}
				cl = &crashClass{key: key, repro: fmt.Sprintf("workload %s, crash %s, variant %s: %s [-crashstates.case=%s/%d/%s]",
					tr.name, at, v, f.detail, tr.name, w.k, v)}
				classes[key] = cl
			}
			cl.n++
		}
	})
	return tally, classes
}

// observeAll opens every image, on as many goroutines as there are
// cores, and returns what each showed by its key(true).
func observeAll(t *testing.T, imgs []crashImage, cfg Config) map[[32]byte]crashObs {
	out := make(map[[32]byte]crashObs, len(imgs))
	var mu sync.Mutex
	var wg sync.WaitGroup
	next := make(chan crashImage)
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for img := range next {
				o := observe(img, cfg)
				mu.Lock()
				out[img.key(true)] = o
				mu.Unlock()
			}
		})
	}
	for _, img := range imgs {
		next <- img
	}
	close(next)
	wg.Wait()
	for _, o := range out {
		if o.readTemp {
			t.Fatal("the store read a temp file it found at open: states that differ only in temp files are no longer alike (see crashImage.key)")
		}
	}
	return out
}

// logCase logs one crash state in full, for -crashstates.case.
func (tr *crashTrace) logCase(t *testing.T, w *crashWalk, v crashVariant, img crashImage, o crashObs, findings []crashFinding) {
	t.Helper()
	for i, op := range tr.ops {
		mark := " "
		switch {
		case i == w.k-1:
			mark = ">" // the crash comes right after it
		case i >= w.k:
			mark = "-" // never happened
		}
		t.Logf("%s op %3d %s", mark, i+1, describeCrashOp(op))
	}
	var data, dirs []int
	for _, ops := range w.pendData {
		for _, i := range ops {
			data = append(data, i+1)
		}
	}
	for _, i := range w.pendDir {
		dirs = append(dirs, i+1)
	}
	slices.Sort(data)
	t.Logf("not durable at the crash: operations %v (data), %v (directory)", data, dirs)
	t.Logf("variant %s leaves:", v)
	for _, name := range slices.Sorted(maps.Keys(img.files)) {
		t.Logf("  %s (inode %d): %d bytes", sweepFileName(name), img.ns[name], len(img.files[name]))
	}
	t.Logf("open: %v; pending %d (Stats %d), dead %d; replay: %v", o.openErr, len(o.pending), o.statsPending, len(o.dead), o.replayErr)
	for _, c := range o.pending {
		r := tr.book.byID[c.id]
		payload := "?"
		if r != nil {
			payload = r.payload
		}
		t.Logf("  pending %s attempts %d %q", c.id, c.attempts, payload)
	}
	for _, c := range o.dead {
		t.Logf("  dead %s attempts %d", c.id, c.attempts)
	}
	for _, f := range findings {
		t.Logf("finding %s: %s", f.check, f.detail)
	}
}

func describeCrashOp(op crashOp) string {
	s := fmt.Sprintf("%s %s", op.kind, sweepFileName(op.name))
	switch op.kind {
	case crashWrite:
		s += fmt.Sprintf(" [inode %d] %d bytes at %d", op.ino, len(op.data), op.off)
	case crashTruncate:
		s += fmt.Sprintf(" [inode %d] to %d", op.ino, op.size)
	case crashRename:
		s += " -> " + sweepFileName(op.to) + fmt.Sprintf(" [inode %d]", op.ino)
	case crashSyncDir:
		s = "syncdir"
	default:
		s += fmt.Sprintf(" [inode %d]", op.ino)
	}
	return s + " (" + op.step + ")"
}

// crashCase is a -crashstates.case selection.
type crashCase struct {
	workload string
	k        int
	v        crashVariant
}

func parseCrashCase(t *testing.T, s string) *crashCase {
	parts := strings.SplitN(s, "/", 3)
	if len(parts) != 3 {
		t.Fatalf("-crashstates.case %q: want workload/k/variant", s)
	}
	k, err := strconv.Atoi(parts[1])
	v, ok := parseCrashVariant(parts[2])
	if err != nil || k < 0 || !ok {
		t.Fatalf("-crashstates.case %q: want workload/k/variant", s)
	}
	return &crashCase{workload: parts[0], k: k, v: v}
}

func TestCrashStates(t *testing.T) {
	start := time.Now()
	var only *crashCase
	if *crashCaseFlag != "" {
		only = parseCrashCase(t, *crashCaseFlag)
	}
	// Each store opened allocates about 1 MB of buffers (64 KiB line
	// readers, 256 KiB rewrite buffers), which -race makes costly: a
	// larger GC target cuts this test's time by a third.
	defer debug.SetGCPercent(debug.SetGCPercent(400))
	var total crashTally
	for _, w := range crashWorkloads() {
		if only != nil && strings.Split(only.workload, "~")[0] != w.name {
			continue
		}
		t.Run(w.name, func(t *testing.T) {
			tr := recordCrashTrace(t, &w)
			classes := map[string]*crashClass{}
			run := func(tr *crashTrace) crashTally {
				if only != nil && (only.k < tr.from || only.k > len(tr.ops)) {
					t.Fatalf("%s has crash points %d to %d", tr.name, tr.from, len(tr.ops))
				}
				tally, found := tr.explore(t, testing.Short(), only)
				total.points += tally.points
				total.states += tally.states
				total.opened += tally.opened
				for key, cl := range found {
					if have := classes[key]; have != nil {
						have.n += cl.n
					} else {
						classes[key] = cl
					}
				}
				return tally
			}
			if only == nil || only.workload == tr.name {
				tally := run(tr)
				t.Logf("%d operations, %d crash points, %d states, %d distinct stores opened",
					len(tr.ops), tally.points, tally.states, tally.opened)
			}
			if w.cfg.Sync == SyncAlways {
				var rec crashTally
				n := 0
				kills := tr.recoveryTraces(t, func(k int) bool {
					n++
					switch {
					case only != nil:
						return only.workload == fmt.Sprintf("%s~kill%d", tr.name, k)
					case testing.Short():
						return n%4 == 1
					}
					return true
				})
				for _, rt := range kills {
					x := run(rt)
					rec.points += x.points
					rec.states += x.states
					rec.opened += x.opened
				}
				t.Logf("recovery after a process crash at %d points: %d crash points, %d states, %d distinct stores opened",
					len(kills), rec.points, rec.states, rec.opened)
			}
			for _, key := range slices.Sorted(maps.Keys(classes)) {
				cl := classes[key]
				t.Errorf("%d states: %s\n\t%s", cl.n, key, cl.repro)
			}
		})
	}
	if only == nil && !testing.Short() && total.states < 10000 {
		t.Errorf("only %d crash states explored; the explorer promises at least 10,000", total.states)
	}
	t.Logf("crash states: %d crash points, %d states, %d distinct stores opened, %v",
		total.points, total.states, total.opened, time.Since(start).Round(time.Millisecond))
}

// The states TestCrashStates found the store wrong in, rebuilt by hand so
// that they outlive changes to the workloads' operations. Each fails until
// its cause is fixed.
func TestCrashStatesRegressions(t *testing.T) {
	at := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
	rec := func(n, attempts int) Record {
		return Record{ID: fmt.Sprintf("seed-%02d", n), Payload: sweepPayload("seed", n),
			EnqueuedAt: at.Add(time.Duration(n) * time.Second), Attempts: attempts}
	}
	dir := crashStoreDir()
	path := filepath.Join(dir, "p.jsonl")
	seg := filepath.Base(segmentPath(path, 1, 1))
	ledger := func(t *testing.T, marks map[string]mark) []byte {
		b, err := json.Marshal(ledgerFile{Version: ledgerVersion, Segments: marks})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}

	// Found as "stats checkpoint-never" and "stats replay-respill-never":
	// under SyncNever a seal does not fsync the segment, but the ledger
	// records its count, durably. A power loss that drops one write of
	// the segment and keeps the ones after it (a hole of zeros, the size
	// unchanged) leaves a segment whose size and first record still match
	// the ledger, so open trusts the count: Stats says 5 records pending,
	// a Replay finds 3 (the hole, glued to the next line, is quarantined;
	// those two records were never durable, which SyncNever allows).
	t.Run("open trusts the count of a segment that was never fsynced", func(t *testing.T) {
		w := &sweepWorkload{name: "seal-never-by-hand", cfg: Config{Sync: SyncNever}, steps: func(r *sweepRun) {
			r.appendN(0, 5)
			r.replay("replay", func(int, Record) error { return nil })
		}}
		tr := recordCrashTrace(t, w)
		// The crash comes after the seal (and the ledger write that
		// records its count), as the replay's commit removes the drained
		// segment.
		k, drop := -1, -1
		for i, op := range tr.ops {
			switch {
			case op.kind == crashWrite && op.name == "p.jsonl" && op.step == "append 1":
				drop = i
			case op.kind == crashRemove && op.step == "replay" && k < 0:
				k = i
			}
		}
		tr.expectNoFindings(t, k, crashVariant{kind: "drop", op: drop})
	})

	// Found as "repeat checkpoint-always~recovery" (and long-drain-always):
	// a replay accepted every record of segment 1-1, a checkpoint made
	// that durable, and the process was killed after it removed the
	// segment, before the directory fsync. Open finds the segment gone
	// and drops its ledger entry (rewriting the ledger without it) before
	// any directory fsync: a power loss that keeps the new ledger and not
	// the segment's removal brings the segment back with no mark, and every
	// record the checkpoint had settled is delivered again. (It needs the
	// two operations to reach the disk out of order, which the explorer's
	// model allows: neither was fsynced.)
	t.Run("recovery drops a ledger entry before the segment's removal is durable", func(t *testing.T) {
		body := encodeLines(rec(0, 0), rec(1, 0))
		marks := map[string]mark{seg: {Size: int64(len(body)), First: rec(0, 0).ID, Off: int64(len(body)), Lines: 2, Records: 2}}
		tr := recoveryByHand(t, map[string][]byte{seg: body, "p.jsonl" + ledgerSuffix: ledger(t, marks)}, func(cfs *crashFS) {
			if err := cfs.Remove(filepath.Join(dir, seg)); err != nil {
				t.Fatal(err)
			}
		})
		tr.checkpoint(marks)
		for n := range 2 {
			tr.settled(rec(n, 0), seg, int64(len(encodeLines(rec(0, 0))))*int64(n+1))
		}
		k := tr.find(t, crashRename, "p.jsonl"+ledgerSuffix) + 1 // the ledger without the entry
		undo := tr.find(t, crashRemove, seg)
		tr.expectNoFindings(t, k, crashVariant{kind: "undo", undo: []int{undo}})
	})

	// Found as "repeat checkpoint-always~recovery": a replay's commit
	// renamed the records it kept over segment 1-1, whose first two
	// records a durable checkpoint had settled, and the process was
	// killed before the directory fsync. Open finds a segment the ledger
	// entry no longer matches and writes a ledger without it, renaming
	// it into place before any directory fsync: a power loss that keeps
	// that rename and not the commit's brings the old segment back with
	// no mark, and the settled records are delivered again.
	t.Run("recovery rewrites the ledger before a commit's rename is durable", func(t *testing.T) {
		body := encodeLines(rec(0, 0), rec(1, 0), rec(2, 0))
		settled := int64(len(encodeLines(rec(0, 0), rec(1, 0))))
		marks := map[string]mark{seg: {Size: int64(len(body)), First: rec(0, 0).ID, Off: settled, Lines: 2, Records: 3}}
		tr := recoveryByHand(t, map[string][]byte{seg: body, "p.jsonl" + ledgerSuffix: ledger(t, marks)}, func(cfs *crashFS) {
			tmp := path + tmpInfix + "00aa"
			f, err := cfs.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.Write(encodeLines(rec(2, 1))); err != nil {
				t.Fatal(err)
			}
			if err := errors.Join(f.Sync(), f.Close(), cfs.Rename(tmp, filepath.Join(dir, seg))); err != nil {
				t.Fatal(err)
			}
		})
		tr.checkpoint(marks)
		tr.settled(rec(0, 0), seg, int64(len(encodeLines(rec(0, 0)))))
		tr.settled(rec(1, 0), seg, settled)
		tr.pending(rec(2, 0))
		k := tr.find(t, crashRename, "p.jsonl"+ledgerSuffix) + 1
		undo := tr.find(t, crashRename, seg)
		tr.expectNoFindings(t, k, crashVariant{kind: "undo", undo: []int{undo}})
	})
}

// recoveryByHand is a recovery trace built by hand: files are durable,
// crashed makes the operations a killed process left not durable, and
// then the store is opened (SyncAlways, the defaults) on what it left.
func recoveryByHand(t *testing.T, files map[string][]byte, crashed func(*crashFS)) *crashTrace {
	t.Helper()
	dir := crashStoreDir()
	cfs := newCrashFS(dir, files, true)
	initNS, initData := maps.Clone(cfs.ns), maps.Clone(cfs.data)
	crashed(cfs)
	from := cfs.ops() + 1
	w := &sweepWorkload{name: "by-hand", cfg: Config{checkpointEvery: 1000 * time.Hour}}
	cfg := w.cfg
	cfg.fs, cfg.now = cfs, sweepClock()
	if _, err := Open(filepath.Join(dir, "p.jsonl"), cfg); err != nil {
		t.Fatal(err)
	}
	return &crashTrace{w: w, name: w.name, path: filepath.Join(dir, "p.jsonl"), initNS: initNS, initData: initData,
		ops: cfs.recorded(), from: from, book: newCrashBook(t, cfs)}
}

// find returns the index of tr's first operation of kind on the file
// name (a rename's new name).
func (tr *crashTrace) find(t *testing.T, kind crashOpKind, name string) int {
	t.Helper()
	for i, op := range tr.ops {
		if op.kind == kind && (op.name == name || kind == crashRename && op.to == name) {
			return i
		}
	}
	t.Fatalf("no %s of %s in %d operations", kind, name, len(tr.ops))
	return -1
}

// expectNoFindings checks the state variant v leaves after operation k.
func (tr *crashTrace) expectNoFindings(t *testing.T, k int, v crashVariant) {
	t.Helper()
	w := newCrashWalk(tr)
	for w.k < k {
		w.step()
	}
	img := w.image(v)
	o := observe(img, tr.w.cfg)
	for _, f := range tr.check(w, v, img, o, w.durableLedger()) {
		t.Errorf("after operation %d (%s), variant %s: %s: %s", k, describeCrashOp(tr.ops[k-1]), v, f.check, f.detail)
	}
}

// pending, settled and checkpoint tell a trace built by hand what was
// true before it: rec is pending; rec was accepted by fn, read from the
// segment name's line ending at end (name as the trace starts); the
// ledger held marks, durably.
func (tr *crashTrace) pending(rec Record) {
	r := tr.book.add(rec.ID, string(rec.Payload))
	r.ackAt, r.durableAt, r.ackedStep = 0, 0, "before the trace"
	r.floors = []crashFloor{{at: 0, min: rec.Attempts}}
}

func (tr *crashTrace) settled(rec Record, name string, end int64) {
	tr.pending(rec)
	r := tr.book.byID[rec.ID]
	r.acceptAt = 0
	r.src = []crashLine{{name: name, ino: tr.initNS[name], end: end}}
}

func (tr *crashTrace) checkpoint(marks map[string]mark) {
	inos := map[string]int{}
	for name := range marks {
		inos[name] = tr.initNS[name]
	}
	tr.book.checkpoints = append(tr.book.checkpoints, crashCheckpoint{at: 0, marks: marks, inos: inos})
}
