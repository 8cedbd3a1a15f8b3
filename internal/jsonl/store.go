package jsonl

import (
	"context"
	"errors"
	"fmt"
	"github.com/syncbreaker/syncbreaker/internal/fsx"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// Store defaults; see Config.
const (
	DefaultMaxBytes        = 1 << 30  // 1 GiB of pending records
	DefaultMaxPayloadBytes = 16 << 20 // 16 MiB per payload
	DefaultSegmentBytes    = 64 << 20 // active file size that triggers a seal
)

var (
	// ErrFull is returned by Append when the store is at MaxBytes or
	// the disk is full. Nothing was stored: the caller still owns the
	// payload.
	ErrFull = errors.New("syncbreaker: store is full")
	// ErrTooLarge is returned by Append for a payload over
	// MaxPayloadBytes. Nothing was stored.
	ErrTooLarge = errors.New("syncbreaker: payload too large")
	// ErrClosed is returned by calls on a closed store.
	ErrClosed = errors.New("syncbreaker: store is closed")
	// ErrInvalidConfig is wrapped by Open when a Config field holds a
	// value that cannot work (see Config); the message names the field.
	ErrInvalidConfig = errors.New("syncbreaker: invalid config")
)

// Config configures a Store. The fields other than CheckAll are those of
// the root package's StoreConfig, which documents them for users (the
// bound MaxBytes sets, what each SyncPolicy promises); this comment does
// not repeat it. The zero value is a working, safe store. A value that
// cannot work (an unknown Sync, a negative size, count or interval other
// than MaxBytes) makes Open fail with ErrInvalidConfig rather than become
// a default.
type Config struct {
	Sync            SyncPolicy    // zero: SyncAlways
	SyncInterval    time.Duration // zero: DefaultSyncInterval
	MaxBytes        int64         // zero: DefaultMaxBytes; negative: no limit
	MaxPayloadBytes int           // zero: DefaultMaxPayloadBytes; at most 1 GiB
	MaxAttempts     int           // zero: no limit
	SegmentBytes    int64         // zero: DefaultSegmentBytes
	Logger          *slog.Logger  // nil discards; sizes, IDs, counts only

	// CheckAll reads and checks every record file at open, whatever the
	// ledger already counts: for pendingctl repair, which must find damage
	// in files a daemon would only check when it replays them.
	CheckAll bool

	fs  fsx.FS           // nil: the real filesystem (tests inject faults)
	now func() time.Time // nil: time.Now
	// checkpointEvery is how often a replay saves its progress; zero
	// means checkpointEvery (the constant). Tests shorten it.
	checkpointEvery time.Duration
	// activeEntryEvery is how far the active file grows between ledger
	// entries for it; zero means activeEntryEvery (the constant).
	activeEntryEvery int64
}

// maxPayloadLimit bounds MaxPayloadBytes, so a line's encoded size fits an
// int on every platform.
const maxPayloadLimit = 1 << 30

// withDefaults checks c and returns it with the defaults of its zero
// fields filled in. Each field is checked on its own, and the error
// names the first that cannot work.
func (c Config) withDefaults() (Config, error) {
	invalid := func(field string, v any, why string) (Config, error) {
		return c, fmt.Errorf("%w: %s %v %s", ErrInvalidConfig, field, v, why)
	}
	switch {
	case c.Sync != SyncAlways && c.Sync != SyncInterval && c.Sync != SyncNever:
		return invalid("Sync", c.Sync, "is not SyncAlways, SyncInterval or SyncNever")
	case c.SyncInterval < 0:
		return invalid("SyncInterval", c.SyncInterval, "is negative")
	case c.MaxPayloadBytes < 0:
		return invalid("MaxPayloadBytes", c.MaxPayloadBytes, "is negative")
	case c.MaxPayloadBytes > maxPayloadLimit:
		return invalid("MaxPayloadBytes", c.MaxPayloadBytes, "is above 1 GiB")
	case c.MaxAttempts < 0:
		return invalid("MaxAttempts", c.MaxAttempts, "is negative (zero means no limit)")
	case c.SegmentBytes < 0:
		return invalid("SegmentBytes", c.SegmentBytes, "is negative")
	}
	if c.SyncInterval == 0 {
		c.SyncInterval = DefaultSyncInterval
	}
	if c.MaxBytes == 0 {
		c.MaxBytes = DefaultMaxBytes
	}
	if c.MaxPayloadBytes == 0 {
		c.MaxPayloadBytes = DefaultMaxPayloadBytes
	}
	if c.SegmentBytes == 0 {
		c.SegmentBytes = DefaultSegmentBytes
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.fs == nil {
		c.fs = fsx.OS{}
	}
	if c.now == nil {
		c.now = time.Now
	}
	if c.checkpointEvery == 0 {
		c.checkpointEvery = checkpointEvery
	}
	if c.activeEntryEvery == 0 {
		c.activeEntryEvery = activeEntryEvery
	}
	return c, nil
}

// Store is the durable spill queue: an append-only JSONL file beside
// sealed segments, dead-letter and quarantine files (see Files). It is
// safe for concurrent use; Append never waits for a Replay.
type Store struct {
	path string
	dir  string
	cfg  Config
	fs   fsx.FS
	log  *slog.Logger
	lock io.Closer
	ids  idGen
	// lineLimit is the ledger's MaxLine (see recordLineLimit).
	lineLimit atomic.Int64

	replaySem chan struct{} // one Replay or RequeueDead at a time
	// marks is what the ledger knows of each segment (see ledger.go), by
	// base name. ledgerMu guards it and serialises writes of the ledger;
	// it is taken after syncMu and mu, never before.
	ledgerMu  sync.Mutex
	marks     map[string]mark
	tomb      tombstones   // see late_settle.go; guarded by ledgerMu
	tombCount atomic.Int64 // len(tomb.order), read without the lock
	copyCount atomic.Int64 // len(tomb.copies), read without the lock
	repair    RepairReport

	// The side files, written only by Open and under replaySem; see
	// applog.go. deadMoved is how much of the dead-letter file's head
	// RequeueDead has already moved to pending (see RequeueDead).
	dead, quar *appendLog
	deadMoved  int64

	// Lock order: syncMu, then mu. syncMu serialises fsyncs of the active
	// file with sealing it; mu guards the fields below.
	syncMu    sync.Mutex
	nextSeq   atomic.Uint64 // the next sequence number to give out (see store_layout.go)
	syncedGen atomic.Uint64 // generations known fsynced; stored only under syncMu and mu
	appending atomic.Int32  // SyncAlways appenders between entry and write
	syncErrs  atomic.Int64  // failed fsyncs of the active file

	mu             sync.Mutex
	syncDone       chan struct{} // the running fsync round's, closed when it ends; nil if none
	roundWaiters   int           // appenders waiting on syncDone
	lastWaiters    int           // appenders that waited on the previous round
	active         fsx.File      // nil after Close, or when reopening failed
	activeOff      int64
	syncedOff      int64      // activeOff when syncedGen was last stored (see syncFailedLocked)
	syncedRecords  int64      // activeRecords then: the records in those syncedOff bytes
	entryOff       int64      // what the ledger's entry for the active file covers; written under syncMu too
	epoch          *syncEpoch // the writes since the last failed fsync
	activeFirst    time.Time
	activeFirstID  string          // ID of the active file's first record
	sealed         []sealedSegment // sealed since the ledger last heard of it
	unsynced       []sealedSegment // sealed under SyncNever, not fsynced: counted at Close
	needTruncate   bool            // a failed write left bytes past activeOff
	ownerLost      bool            // another owner holds the active file: no more writes
	fd             uintptr         // active's descriptor (see setActive)
	writtenGen     uint64
	closed         bool
	pendingRecords int64
	activeRecords  int64 // of pendingRecords, those in the active file
	pendingBytes   int64
	oldest         time.Time
	timer          *time.Timer
	timerArmed     bool
	timerWG        sync.WaitGroup

	// The active file's watch (see active_identity.go).
	watch   *time.Timer
	watchWG sync.WaitGroup

	appended, republished, quarantined, deadLettered atomic.Int64
	restored, truncations, lostRecords               atomic.Int64
	rejectedFull, rejectedNoSpace, rejectedTooLarge  atomic.Int64
}

// Open opens (or creates) the store whose active file is path,
// for example ~/.shelltime/sync-pending.jsonl. It creates missing parent
// directories (0700), refuses a symlink at path, and takes the store's lock
// or fails at once with fsx.ErrLocked. Every store file it opens, then and
// later, must be a regular file: a directory, FIFO, socket or device fails
// with fsx.ErrNotRegular instead of blocking. Then it repairs what a crash may
// have left (see RepairReport): a torn last line is cut, unreadable lines
// go to the quarantine file, a file written by the original implementation
// (one bare JSON payload a line) is rewritten as records, and leftovers of
// an interrupted replay are resolved. Damage is never fatal. Opening does
// not read what the store's ledger (PATH.ledger) already counts: sealed
// segments, and the active file up to where Close left it; those are
// checked line by line when they are replayed. A file the ledger does not
// know, or no longer matches, is read whole. An invalid cfg, or an empty
// path, fails with ErrInvalidConfig.
func Open(path string, cfg Config) (*Store, error) {
	if path == "" {
		return nil, fmt.Errorf("%w: store path is empty", ErrInvalidConfig)
	}
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("syncbreaker: %w", err)
	}
	s := &Store{
		path:      abs,
		dir:       filepath.Dir(abs),
		cfg:       cfg,
		fs:        cfg.fs,
		log:       cfg.Logger,
		replaySem: make(chan struct{}, 1),
		epoch:     new(syncEpoch),
	}
	if err := fsx.MkdirPrivate(s.fs, s.dir); err != nil {
		return nil, err
	}
	for _, p := range []string{abs, abs + lockSuffix} {
		fi, err := s.fs.Lstat(p)
		switch {
		case err == nil && fi.Mode()&os.ModeSymlink != 0:
			return nil, fmt.Errorf("syncbreaker: refusing symlink at store path %s", filepath.Base(p))
		case err != nil && !errors.Is(err, os.ErrNotExist):
			return nil, fmt.Errorf("syncbreaker: %w", err)
		}
	}
	lock, err := s.fs.Lock(abs + lockSuffix)
	if err != nil {
		if !errors.Is(err, fsx.ErrLocked) {
			err = fmt.Errorf("syncbreaker: lock: %w", err)
		}
		return nil, err
	}
	s.lock = lock
	// The active file's own lock, before recovery touches anything: a
	// deleted lock file must not let a second owner repair what the
	// first is using (see LockFile).
	// It creates nothing: what an earlier process left is made durable
	// by recovery first.
	guard, err := s.fs.OpenFile(s.path, os.O_RDWR, 0)
	switch {
	case err == nil:
		if err := s.fs.LockFile(guard); err != nil {
			if !errors.Is(err, fsx.ErrLocked) {
				err = wrapErr(err, "lock active file")
			}
			return nil, errors.Join(err, guard.Close(), lock.Close())
		}
		s.setActive(guard)
	case !errors.Is(err, os.ErrNotExist):
		return nil, errors.Join(wrapErr(err, "open %s", filepath.Base(s.path)), lock.Close())
	}
	if err := s.recover(); err != nil {
		if s.active != nil {
			err = errors.Join(err, s.active.Close())
		}
		return nil, errors.Join(err, lock.Close())
	}
	s.mu.Lock()
	s.armWatch()
	s.mu.Unlock()
	return s, nil
}

// recover resolves what a crash may have left and counts what is pending.
func (s *Store) recover() error {
	ls, err := listStoreAll(s.fs, s.path)
	if err != nil {
		return err
	}
	segs, superseded, temps := ls.live, ls.superseded, ls.temps
	for _, p := range ls.unrecognized {
		// Never read, never counted: whatever it holds is not replayed.
		s.log.Warn("syncbreaker: file named like a store segment is not one (its name does not parse, or it is not a regular file); it is not read", "file", filepath.Base(p))
	}
	s.takeOver(segs)
	// A temp file is a rewrite that never got renamed into place: its
	// source still exists, so it holds nothing unique.
	for _, p := range temps {
		if err := s.fs.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("syncbreaker: remove temp file: %w", err)
		}
		s.repair.RemovedTemp = append(s.repair.RemovedTemp, p)
	}
	// A superseded segment's records were all settled into the segment
	// that supersedes it before it was deleted (or would have been). The
	// rename that created that segment may not be durable yet (a crash
	// before its directory fsync): make it so before deleting its sources,
	// or a power loss could keep the deletes and lose the rename.
	// A process killed between a rename or a remove and its directory
	// fsync leaves that operation visible but maybe not durable: make it
	// durable before acting on it (removing the superseded segments a
	// commit replaced, rewriting the ledger that described them), or a
	// power loss could keep what open did and undo what the run did.
	if err := s.fs.SyncDir(s.dir); err != nil {
		return fmt.Errorf("syncbreaker: %w", err)
	}
	for _, p := range superseded {
		if err := s.fs.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("syncbreaker: remove superseded segment: %w", err)
		}
		s.repair.RemovedSuperseded = append(s.repair.RemovedSuperseded, p)
	}
	if len(temps)+len(superseded) > 0 {
		if err := s.fs.SyncDir(s.dir); err != nil {
			return fmt.Errorf("syncbreaker: %w", err)
		}
	}
	quarantine, err := s.openSideFiles()
	if err != nil {
		return err
	}
	defer quarantine.sync()
	l, err := loadLedger(s.fs, s.path+ledgerSuffix)
	if err != nil {
		s.log.Warn("syncbreaker: ledger unreadable: drains start over", "err", err)
	}
	s.lineLimit.Store(l.MaxLine)
	maxLine := s.readLimit()
	note := func(rep FileRepair) {
		if rep.Quarantined > 0 || rep.LegacyRewritten > 0 {
			s.repair.Files = append(s.repair.Files, rep)
			s.quarantined.Add(int64(rep.Quarantined))
			s.log.Warn("syncbreaker: repaired store file", "file", filepath.Base(rep.Path),
				"quarantined_lines", rep.Quarantined, "quarantined_bytes", rep.QuarantinedBytes,
				"torn_bytes", rep.TornBytes, "legacy_rewritten", rep.LegacyRewritten)
		}
	}
	stored := l.Segments
	for _, id := range l.Settled {
		s.tomb.add(id)
	}
	for _, id := range l.Copies {
		if _, ok := s.tomb.ids[id]; ok {
			if s.tomb.copies == nil {
				s.tomb.copies = map[string]struct{}{}
			}
			s.tomb.copies[id] = struct{}{}
		}
	}
	s.tomb.dirty = false
	s.tombCount.Store(int64(len(s.tomb.order)))
	s.copyCount.Store(int64(len(s.tomb.copies)))
	s.nextSeq.Store(s.startSeq(l, segs))
	s.marks = map[string]mark{}
	// tally counts a file's pending records. The queue's head is the
	// first record of the first file that has one: first reads its time,
	// for that file only.
	var head time.Time
	headFound := false
	tally := func(records, size int64, first func() (time.Time, error)) error {
		s.pendingRecords += records
		s.pendingBytes += size
		if records == 0 || headFound {
			return nil
		}
		var err error
		head, err = first()
		headFound = true
		return err
	}
	known := func(t time.Time) func() (time.Time, error) {
		return func() (time.Time, error) { return t, nil }
	}
	for _, seg := range segs {
		name := filepath.Base(seg.path)
		m, ok, err := matchMark(s.fs, seg, stored[name])
		if err != nil {
			return err
		}
		if ok && m.Records > 0 && !s.cfg.CheckAll {
			// Counted when it was sealed or written: no scan. A sealed
			// segment is checked line by line when it is replayed.
			err := tally(max(m.Records-m.Lines, 0), seg.size, func() (time.Time, error) {
				return headTime(s.fs, seg.path, m.Off, maxLine)
			})
			if err != nil {
				return err
			}
			s.marks[name] = m
			continue
		}
		rewriteTo := func() (string, error) {
			rev, err := s.takeSeq()
			return rewritePath(s.path, seg.lo, seg.hi, rev), err
		}
		rep, sum, err := repairFile(s.fs, s.path, seg.path, rewriteTo, quarantine, maxLine, m.Off)
		if err != nil {
			return err
		}
		note(rep)
		_ = tally(sum.records, sum.size, known(sum.first))
		switch {
		case sum.firstID == "":
		case sum.path != seg.path:
			// Rewritten under a new name, every record counted again.
			s.marks[filepath.Base(sum.path)] = mark{Size: sum.size, First: sum.firstID, Records: sum.records}
		default:
			// Learn its count, so the next open needs no scan.
			m.Size, m.First, m.Records = seg.size, sum.firstID, m.Lines+sum.records
			s.marks[name] = m
		}
	}
	var activeSum fileSummary
	if _, err := s.fs.Lstat(s.path); err == nil {
		sum, err := s.recoverActive(quarantine, maxLine, stored[filepath.Base(s.path)], note)
		if err != nil {
			return err
		}
		_ = tally(sum.records, sum.size, known(sum.first))
		activeSum = sum
	} else if !errors.Is(err, os.ErrNotExist) {
		// Taking it for missing would write new records over old ones.
		return fmt.Errorf("syncbreaker: %w", err)
	}
	s.oldest = head
	if !maps.Equal(s.marks, stored) {
		// Entries of segments gone or rewritten go now; counts learned
		// are kept.
		if err := saveLedger(s.fs, s.path, s.marks, s.nextSeq.Load(), &s.tomb, s.lineLimit.Load()); err != nil {
			s.log.Warn("syncbreaker: ledger not updated", "err", err)
		}
	}
	// The guard taken at Open is the active file, unless recovery
	// rewrote it under its name.
	f := s.active
	if f != nil {
		if same, _, err := s.fs.SameFile(f, s.path); err != nil || !same {
			_ = f.Close()
			f = nil
		}
	}
	if f == nil {
		if f, err = s.createActive(); err != nil {
			if errors.Is(err, fsx.ErrLocked) {
				return err
			}
			return fmt.Errorf("syncbreaker: open active file: %w", err)
		}
	}
	s.setActive(f)
	s.activeOff, s.activeFirst = activeSum.size, activeSum.first
	s.activeFirstID = activeSum.firstID
	s.activeRecords = activeSum.records
	s.syncedOff = s.activeOff // an earlier run's records: a failed fsync never cuts them
	s.syncedRecords = s.activeRecords
	s.entryOff = s.marks[filepath.Base(s.path)].Size
	return nil
}

// setActive makes f (nil: none) the active file, and keeps its descriptor
// for the check before each write: File.Fd costs an fcntl a call. Requires
// s.mu or exclusive access.
func (s *Store) setActive(f fsx.File) {
	s.active, s.fd = f, ^uintptr(0)
	if f != nil {
		s.fd = f.Fd()
	}
}

// createActive opens the active file, creating it if need be, and fsyncs
// the directory: an Append's fsync makes the file's content durable, not
// its name, so without this a power loss could take a new active file and
// every acknowledged record in it.
//
// It is opened for reading too, so the store can copy what it holds if
// the file is deleted under it (see active_identity.go), and locked (see
// fsx.LockFile): another owner makes it fail with fsx.ErrLocked.
func (s *Store) createActive() (fsx.File, error) {
	f, err := fsx.CreatePrivate(s.fs, s.path, os.O_RDWR)
	if err != nil {
		return nil, err
	}
	if err := s.fs.LockFile(f); err != nil {
		return nil, errors.Join(err, f.Close())
	}
	if err := s.fs.SyncDir(s.dir); err != nil {
		return nil, errors.Join(err, f.Close())
	}
	return f, nil
}

// recoverActive counts the active file's records and repairs it. When the
// ledger holds its entry from the last Close (known: its first known.Size
// bytes, known.Records records, and its first record's ID), and the file
// still starts with that record, only what follows is read: records
// appended since, and a torn tail a crash left. Any damage there, or no
// usable entry, means the whole file is read, and repaired if need be.
func (s *Store) recoverActive(quarantine *appendLog, maxLine int, known mark, note func(FileRepair)) (fileSummary, error) {
	name := filepath.Base(s.path)
	if known.Records > 0 && known.First != "" && !s.cfg.CheckAll {
		id, size, err := readFirstID(s.fs, s.path)
		if err != nil {
			return fileSummary{}, err
		}
		if id == known.First && size >= known.Size {
			tail, clean, err := scanTail(s.fs, s.path, known.Size, maxLine)
			if err != nil {
				return fileSummary{}, err
			}
			if clean {
				s.marks[name] = known
				return fileSummary{records: known.Records + tail, size: size, first: known.FirstAt, firstID: id}, nil
			}
		}
	}
	if runtime.GOOS == "windows" && s.active != nil {
		// Windows cannot rename a repaired file over an open one; its lock
		// file cannot be deleted while held, which is what the guard is
		// for. The guard is taken again at the end of recovery.
		err := s.active.Close()
		s.setActive(nil)
		if err != nil {
			return fileSummary{}, wrapErr(err, "open active file")
		}
	}
	rep, sum, err := repairFile(s.fs, s.path, s.path, nil, quarantine, maxLine, 0)
	if err != nil {
		return sum, err
	}
	note(rep)
	return sum, nil // no entry: Close writes a fresh one
}

// scanTail counts the records of the file at path from the byte offset
// off on, and reports whether every line there is a whole, valid record.
func scanTail(fsys fsx.FS, path string, off int64, maxLine int) (records int64, clean bool, err error) {
	f, err := fsys.OpenFile(path, os.O_RDONLY, 0)
	if err != nil {
		return 0, false, wrapErr(err, "open %s", filepath.Base(path))
	}
	defer f.Close()
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		return 0, false, wrapErr(err, "read %s", filepath.Base(path))
	}
	clean = true
	err = scanRecords(f, maxLine, time.Time{}, nil, func(e *ScanEntry, _ []byte) error {
		if e.Problem != ProblemNone || e.Legacy {
			clean = false
			return errStopScan
		}
		records++
		return nil
	})
	if err != nil && !errors.Is(err, errStopScan) {
		return 0, false, wrapErr(err, "read %s", filepath.Base(path))
	}
	return records, clean, nil
}

// updateLedger applies change to the marks and saves them. If saving
// fails, the marks stay as they were, unless always: a change that states
// a fact (a segment is gone, or was rewritten) holds in memory whatever
// the file says, and a stale entry on disk cannot match at open.
func (s *Store) updateLedger(always bool, change func(map[string]mark)) error {
	s.ledgerMu.Lock()
	defer s.ledgerMu.Unlock()
	next := maps.Clone(s.marks)
	change(next)
	if maps.Equal(next, s.marks) && !s.tomb.dirty {
		return nil
	}
	err := saveLedger(s.fs, s.path, next, s.nextSeq.Load(), &s.tomb, s.lineLimit.Load())
	if err == nil {
		s.tomb.dirty = false
	}
	if err == nil || always {
		s.marks = next
	}
	return err
}

// recordActive writes the active file's entry to the ledger, so the next
// open reads only what is appended after it (see recoverActive), with the
// counts of the segments sealed, now fsynced (see syncUnsynced). Called by
// Close once the file is fsynced; a failure costs the next open a scan.
func (s *Store) recordActive(sealed []sealedSegment) {
	s.mu.Lock()
	m := mark{Size: s.activeOff, First: s.activeFirstID, Records: s.activeRecords, FirstAt: s.activeFirst}
	s.mu.Unlock()
	name := filepath.Base(s.path)
	err := s.updateLedger(true, func(marks map[string]mark) {
		for _, seg := range sealed {
			marks[seg.name] = seg.m
		}
		if m.Records > 0 && m.First != "" {
			marks[name] = m
		} else {
			delete(marks, name)
		}
	})
	if err != nil {
		s.log.Warn("syncbreaker: close: ledger not updated", "err", err)
	}
}

// activeEntryEvery is how far the fsynced part of the active file may grow
// past the ledger's entry for it before a new entry is written: what
// opening after a kill -9 or a power loss reads of it (about 4,000 records
// of 1 KiB, a few milliseconds), for one ledger write (about four fsyncs)
// per 4 MiB appended.
const activeEntryEvery = 4 << 20

// maybeRecordActive writes the active file's entry to the ledger once its
// fsynced part has grown Config.activeEntryEvery past the entry, so that opening
// after a crash reads only the rest (see recoverActive). The entry covers
// fsynced bytes only, which a power loss leaves in place. Under SyncNever,
// which never fsyncs, the entry Close writes is the only one. Called after
// a successful fsync round; a failure is logged and costs the next open a
// longer read, and the next try waits for another activeEntryEvery.
func (s *Store) maybeRecordActive() {
	s.mu.Lock()
	due := s.syncedOff-s.entryOff >= s.cfg.activeEntryEvery
	s.mu.Unlock()
	if !due {
		return
	}
	s.syncMu.Lock() // no seal replaces the file meanwhile
	defer s.syncMu.Unlock()
	s.mu.Lock()
	m := mark{Size: s.syncedOff, First: s.activeFirstID, Records: s.syncedRecords, FirstAt: s.activeFirst}
	due = !s.closed && m.Size-s.entryOff >= s.cfg.activeEntryEvery && m.First != "" && m.Records > 0
	if due {
		s.entryOff = m.Size
	}
	s.mu.Unlock()
	if !due {
		return
	}
	name := filepath.Base(s.path)
	if err := s.updateLedger(false, func(marks map[string]mark) { marks[name] = m }); err != nil {
		s.log.Warn("syncbreaker: ledger: active file's entry not updated", "err", err)
	}
}

// markOf returns what the ledger knows of the segment called name.
func (s *Store) markOf(name string) mark {
	s.ledgerMu.Lock()
	defer s.ledgerMu.Unlock()
	return s.marks[name]
}

// count adds a file's records to the pending totals. Requires s.mu or
// exclusive access.
func (s *Store) count(sum fileSummary) {
	if sum.records > 0 && (s.pendingRecords == 0 || sum.first.Before(s.oldest)) {
		s.oldest = sum.first
	}
	s.pendingRecords += sum.records
	s.pendingBytes += sum.size
}

// RepairReport says what opening the store repaired.
func (s *Store) RepairReport() RepairReport { return s.repair }

// Path returns the store's active file path, absolute.
func (s *Store) Path() string { return s.path }

// Append stores payload as a new record and returns nil once it is
// written (and, under SyncAlways, fsynced). It fails with
// ErrTooLarge or ErrFull (the caller keeps the payload), with
// ctx.Err() if ctx is already done, or with ErrClosed (nothing was
// written: an Append that wrote before Close began returns what Close's
// final fsync did for its record). It returns nil exactly when its record
// is stored. A failed write
// is cut back so no partial line remains. Under SyncAlways a failed
// fsync fails every Append it covered, wrapping the fsync error, and
// cuts their records back: the callers keep the payloads, and a later
// fsync that succeeds is never taken as proof for them (see syncTo).
func (s *Store) Append(ctx context.Context, payload []byte) error {
	var id [36]byte
	return s.append(ctx, payload, &id, "")
}

// AppendID is Append that also returns the new record's ID.
func (s *Store) AppendID(ctx context.Context, payload []byte) (string, error) {
	return s.AppendMessage(ctx, payload, "")
}

// AppendMessage is AppendID for the payload of the message msgID, which
// the record keeps (Record.MessageID) when it is in the ID alphabet.
func (s *Store) AppendMessage(ctx context.Context, payload []byte, msgID string) (string, error) {
	var id [36]byte
	if err := s.append(ctx, payload, &id, msgID); err != nil {
		return "", err
	}
	return string(id[:]), nil
}

// append is Append, formatting the new record's ID into id; msgID, when
// not empty, is kept with the record.
func (s *Store) append(ctx context.Context, payload []byte, id *[36]byte, msgID string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if len(payload) > s.cfg.MaxPayloadBytes {
		s.rejectedTooLarge.Add(1)
		return fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(payload), s.cfg.MaxPayloadBytes)
	}
	if s.cfg.Sync == SyncAlways {
		s.appending.Add(1) // see gatherGroup
	}
	now := clampTime(s.cfg.now()) // never fails for the clock
	bp := linePool.Get().(*[]byte)
	line := appendLineAs((*bp)[:0], s.ids.appendNext(id[:0], now), msgID, payload, now, 0, inlinable(payload))
	defer func() {
		if cap(line) <= 64<<10 {
			*bp = line
			linePool.Put(bp)
		}
	}()

	s.noteLine(len(line))
	s.mu.Lock()
	gen, rotate, err := s.writeLocked(line, now)
	if errors.Is(err, errActiveShrunk) {
		// Someone truncated the active file: handle it (see
		// truncatedLocked), then write after its last whole record.
		s.mu.Unlock()
		if err := s.verifyActive(); err != nil && !errors.Is(err, errTruncated) {
			s.log.Warn("syncbreaker: checking the active file failed", "err", err)
		}
		s.mu.Lock()
		gen, rotate, err = s.writeLocked(line, now)
	}
	at := syncPoint{gen: gen, epoch: s.epoch}
	s.mu.Unlock()
	if s.cfg.Sync == SyncAlways {
		s.appending.Add(-1)
	}
	if err != nil {
		return err
	}
	if s.cfg.Sync == SyncAlways {
		if err := s.syncTo(at); err != nil {
			return err
		}
	}
	if rotate {
		s.rotate()
	}
	return nil
}

var linePool = sync.Pool{New: func() any { b := make([]byte, 0, 2048); return &b }}

// cutBackLocked drops what a failed write left past activeOff, and reports
// whether there was anything to cut. Requires s.mu.
func (s *Store) cutBackLocked() (cut bool, err error) {
	if !s.needTruncate {
		return false, nil
	}
	if err := s.active.Truncate(s.activeOff); err != nil {
		return false, err
	}
	s.needTruncate = false
	return true, nil
}

// writeLocked writes one line at the end of the active file. Requires s.mu.
func (s *Store) writeLocked(line []byte, now time.Time) (gen uint64, rotate bool, err error) {
	if s.closed {
		return 0, false, ErrClosed
	}
	if s.ownerLost {
		return 0, false, errOwnerLost
	}
	if s.active == nil && s.activeOff == 0 {
		// A seal or a restore vacated the path and could not start the
		// next file: whatever is there now is not the store's.
		f, err := s.newActiveLocked()
		if err != nil {
			return 0, false, err
		}
		s.setActive(f)
	}
	if s.active == nil {
		f, err := s.createActive()
		if err != nil {
			return 0, false, s.createFailedLocked(err, "reopen active file")
		}
		s.setActive(f)
		s.needTruncate = true
	}
	if _, err := s.cutBackLocked(); err != nil {
		return 0, false, fmt.Errorf("syncbreaker: cut back failed write: %w", err)
	}
	if stored := s.storedBytesLocked(); s.cfg.MaxBytes > 0 && stored+int64(len(line)) > s.cfg.MaxBytes {
		s.rejectedFull.Add(1)
		return 0, false, fmt.Errorf("%w: %d bytes stored, limit %d", ErrFull, stored, s.cfg.MaxBytes)
	}
	// A write past the end of a file someone truncated would leave a
	// hole: Append handles the truncation first (one fstat a write).
	if size, err := fsx.FdSize(s.fd); err == nil && size < s.activeOff {
		return 0, false, errActiveShrunk
	}
	n, err := s.active.WriteAt(line, s.activeOff)
	if err != nil {
		// Cut back whatever part of the line reached the file, so no
		// partial record stays; if that fails too, retry before the next
		// write, which would otherwise land after the junk.
		if terr := s.active.Truncate(s.activeOff); terr != nil {
			s.needTruncate = true
		}
		if fsx.IsDiskFull(err) {
			s.rejectedNoSpace.Add(1)
			return 0, false, fmt.Errorf("%w: disk full: %w", ErrFull, err)
		}
		return 0, false, fmt.Errorf("syncbreaker: append: %w", err)
	}
	if s.activeOff == 0 {
		s.activeFirst, s.activeFirstID = now, lineID(line)
	}
	if s.pendingRecords == 0 {
		s.oldest = now
	}
	s.activeOff += int64(n)
	s.pendingBytes += int64(n)
	s.pendingRecords++
	s.activeRecords++
	s.appended.Add(1)
	s.writtenGen++
	if s.cfg.Sync == SyncInterval {
		s.armSyncTimer()
	}
	return s.writtenGen, s.activeOff >= s.cfg.SegmentBytes, nil
}

// rotate seals a full active file. A failure is only logged: the record
// that triggered it is stored, and the next append retries.
func (s *Store) rotate() {
	s.syncMu.Lock()
	defer s.syncMu.Unlock()
	s.mu.Lock()
	full := s.activeOff >= s.cfg.SegmentBytes
	s.mu.Unlock()
	if !full {
		return
	}
	if err := s.sealLocked(); err != nil {
		s.log.Warn("syncbreaker: sealing full active file failed", "err", err)
	}
	s.recordSealed()
}

// Stats is a snapshot of a store's counters. Counts of events
// (Appended, Quarantined, ...) start at zero when the store is opened;
// Pending* describe the files.
type Stats struct {
	Sync SyncPolicy
	// PendingRecords counts the records waiting to be delivered: copies
	// the next drain discards (see Store.Discard) are left out, so for
	// the moment a drain commits it may read low by those. Records
	// settled late are in it until the drain that removes them, as
	// republished, commits.
	PendingRecords   int64
	PendingBytes     int64
	OldestEnqueuedAt time.Time // EnqueuedAt of the record at the head of the queue; zero if none
	Appended         int64
	Republished      int64
	Quarantined      int64 // unreadable lines moved to the quarantine file (at open and by replays)
	DeadLettered     int64 // records moved to the dead-letter file
	// Rejected appends, by reason. The store never drops a record it
	// accepted; these payloads stayed with the caller.
	RejectedFull     int64 // MaxBytes reached (pending, dead letters and quarantine together)
	RejectedNoSpace  int64 // the disk was full (ENOSPC)
	RejectedTooLarge int64 // payload over MaxPayloadBytes
	// SyncErrors counts fsyncs of the active file that failed. Under
	// SyncAlways the appends they covered failed too; under the other
	// policies see SyncInterval for what a failed fsync costs.
	SyncErrors int64
	// Files changed under the store by someone else (see
	// active_identity.go). ActiveRestored counts active files found
	// deleted or moved and restored from the store's descriptor, which
	// loses nothing; ActiveTruncated counts active files found truncated.
	// LostRecords counts the acknowledged records those truncations and
	// deleted sealed segments took, which no one can restore.
	ActiveRestored  int64
	ActiveTruncated int64
	LostRecords     int64
}

// OldestAge returns how long the head record has waited at now (zero if
// nothing is pending).
func (st Stats) OldestAge(now time.Time) time.Duration {
	if st.OldestEnqueuedAt.IsZero() {
		return 0
	}
	return now.Sub(st.OldestEnqueuedAt)
}

// Stats returns a snapshot of the store's counters.
func (s *Store) Stats() Stats {
	s.mu.Lock()
	st := Stats{
		Sync:           s.cfg.Sync,
		PendingRecords: s.pendingRecords,
		PendingBytes:   s.pendingBytes,
	}
	if s.pendingRecords > 0 {
		st.OldestEnqueuedAt = s.oldest
	}
	s.mu.Unlock()
	// Copies leave at the next drain without delivery: they are not
	// waiting to be sent (see late_settle.go).
	st.PendingRecords = max(st.PendingRecords-s.copyCount.Load(), 0)
	st.Appended = s.appended.Load()
	st.Republished = s.republished.Load()
	st.Quarantined = s.quarantined.Load()
	st.DeadLettered = s.deadLettered.Load()
	st.RejectedFull = s.rejectedFull.Load()
	st.RejectedNoSpace = s.rejectedNoSpace.Load()
	st.RejectedTooLarge = s.rejectedTooLarge.Load()
	st.SyncErrors = s.syncErrs.Load()
	st.ActiveRestored = s.restored.Load()
	st.ActiveTruncated = s.truncations.Load()
	st.LostRecords = s.lostRecords.Load()
	return st
}

// Close fsyncs the active file and releases the store and its lock. It
// waits for a running Replay or RequeueDead to finish (cancel its context
// first for a prompt close). It is safe to call more than once.
func (s *Store) Close() error {
	s.replaySem <- struct{}{}
	defer func() { <-s.replaySem }()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	s.stopSyncTimer()
	s.stopWatch()

	// The final fsync is a round like any other (see syncTo): appenders
	// that wrote before closed was set and still wait find their records
	// fsynced, or, if it fails, cut back and their Appends failed. No
	// Append can write after it, so it settles every one.
	s.syncMu.Lock()
	s.mu.Lock()
	var errs []error
	restored, cerr := s.checkActiveLocked() // see active_identity.go
	f := s.active
	synced := true
	if cerr != nil && !errors.Is(cerr, errTruncated) {
		// What waits is only in a file with no name: not stored.
		synced = false
		errs = append(errs, wrapErr(s.syncFailedLocked(cerr), "close"))
	} else if f != nil {
		target, off, recs := s.writtenGen, s.activeOff, s.activeRecords
		if err := f.Sync(); err != nil {
			synced = false
			errs = append(errs, wrapErr(s.syncFailedLocked(err), "close"))
		} else {
			s.syncedLocked(target, off, recs)
		}
	}
	s.setActive(nil)
	s.mu.Unlock()
	if restored {
		s.recordSealed()
	}
	s.syncMu.Unlock()
	if f != nil {
		if err := f.Close(); err != nil {
			errs = append(errs, fmt.Errorf("syncbreaker: close: %w", err))
		}
		if synced {
			s.recordActive(s.syncUnsynced())
		}
	}
	if err := s.lock.Close(); err != nil {
		errs = append(errs, fmt.Errorf("syncbreaker: close: release lock: %w", err))
	}
	return errors.Join(errs...)
}
