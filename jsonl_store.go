package syncbreaker

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/syncbreaker/syncbreaker/internal/fsx"
	"github.com/syncbreaker/syncbreaker/internal/jsonl"
)

// The JSONL store's public face. The engine (line codec, segments, replay,
// repair, group commit, dead letters, the file-system seam and the lock)
// lives in internal/jsonl and internal/fsx; this file re-exports what a
// daemon configures, inspects and branches on.

// SyncPolicy says when appended records are fsynced, that is, what a power
// loss (not a process crash: every policy writes the record to the kernel
// before Append returns, which survives kill -9) may cost.
type SyncPolicy = jsonl.SyncPolicy

// The sync policies; see the engine's documentation of each.
const (
	// SyncAlways fsyncs before Append returns, so an acknowledged record
	// survives power loss; concurrent appenders share one fsync (group
	// commit). The default.
	SyncAlways = jsonl.SyncAlways
	// SyncInterval fsyncs in the background at most
	// StoreConfig.SyncInterval after a write: power loss may lose that
	// window of acknowledged records. A background fsync that fails is
	// logged and counted (StoreStats.SyncErrors); the records stay, but
	// from then on power loss may lose any record acknowledged since the
	// last successful fsync, since a failed fsync may drop the writes it
	// covered and let the next one succeed without them.
	SyncInterval = jsonl.SyncInterval
	// SyncNever leaves flushing to the OS: survives kill -9, not power
	// loss.
	SyncNever = jsonl.SyncNever
)

// Store defaults, used where a StoreConfig field is zero.
const (
	DefaultSyncInterval    = jsonl.DefaultSyncInterval    // 200 ms
	DefaultMaxBytes        = jsonl.DefaultMaxBytes        // 1 GiB of pending records
	DefaultMaxPayloadBytes = jsonl.DefaultMaxPayloadBytes // 16 MiB per payload
	DefaultSegmentBytes    = jsonl.DefaultSegmentBytes    // active file size that triggers a seal
)

// Store errors, the engine's own values, so errors.Is works on what any
// layer returns.
var (
	// ErrStoreLocked is returned by OpenJSONLStore when another open store,
	// in this process or another, holds the same path.
	ErrStoreLocked = fsx.ErrLocked
	// ErrStoreFull is returned by Append when the store is at MaxBytes or
	// the disk is full. Nothing was stored: the caller still owns the
	// payload.
	ErrStoreFull = jsonl.ErrFull
	// ErrPayloadTooLarge is returned by Append for a payload over
	// MaxPayloadBytes. Nothing was stored.
	ErrPayloadTooLarge = jsonl.ErrTooLarge
	// ErrStoreClosed is returned by calls on a closed store.
	ErrStoreClosed = jsonl.ErrClosed
)

// StoreConfig configures a JSONLStore. The zero value is a working, safe
// store: fsync on every append (with group commit), at most 1 GiB pending,
// payloads up to 16 MiB, no attempt limit. A value that cannot work (an
// unknown Sync, a negative size, count or interval other than MaxBytes)
// makes OpenJSONLStore fail with ErrInvalidConfig naming the field,
// rather than become a default.
type StoreConfig struct {
	// Sync is the fsync policy: SyncAlways (the zero value), SyncInterval
	// or SyncNever.
	Sync SyncPolicy
	// SyncInterval is how long SyncInterval waits after a write before
	// fsyncing. Zero means DefaultSyncInterval (200 ms); negative is an
	// error. Other policies ignore it.
	SyncInterval time.Duration
	// MaxBytes bounds the store's files: pending records (active file and
	// segments), dead letters and quarantined lines, together. An Append
	// that would pass it fails with ErrStoreFull and the caller keeps the
	// payload: a full store never drops or overwrites anything. Append is
	// the only way in; the rest only moves what is already counted, so it
	// is never refused for the bound: a Replay moves records to the dead
	// letters or the quarantine, and while it runs the segment it writes
	// sits beside the ones it replaces (the files peak at the bound plus
	// that one rewritten segment); RequeueDead moves dead letters back,
	// as many as fit in MaxBytes as pending records alone. Repair at open
	// never fails over the bound either (legacy lines grow when rewritten
	// as records, and a store opened with a smaller limit than its content
	// keeps all of it): the store may then be over it, and refuses appends
	// until replays bring it under. A dead-letter or quarantine file
	// removed by hand (say after pendingctl exported it) stops counting at
	// the next Replay or RequeueDead. A remove that fails after a replay or
	// a requeue leaves the replaced copy on disk, uncounted, until the
	// next Replay, RequeueDead or open removes it. Zero means
	// DefaultMaxBytes (1 GiB); negative means no limit.
	MaxBytes int64
	// MaxPayloadBytes is the largest payload Append accepts; larger ones
	// fail with ErrPayloadTooLarge. Zero means DefaultMaxPayloadBytes
	// (16 MiB); negative, or above 1 GiB, is an error. Lowering it never
	// makes records already stored unreadable.
	MaxPayloadBytes int
	// MaxAttempts moves a record to the dead-letter file (P.dead) once it
	// has failed this many deliveries. Zero means no limit, the default;
	// negative is an error. A Breaker counts an attempt only for a
	// delivery refused while the circuit stays closed (the server takes
	// other traffic), so an outage does not use attempts up and a limit
	// such as 5 is safe. RequeueDead moves dead letters back.
	MaxAttempts int
	// SegmentBytes is the active file size at which it is sealed into a
	// segment, which bounds what a cancelled replay has to copy. Zero
	// means DefaultSegmentBytes (64 MiB); negative is an error.
	SegmentBytes int64
	// Logger receives warnings about repairs and failed background work:
	// sizes, IDs and counts only, never payloads. Nil discards.
	Logger *slog.Logger
}

// StoreStats is a snapshot of a store's counters: pending records, bytes
// and age, and counts of appends, republished, quarantined, dead-lettered
// and rejected records since the store was opened.
type StoreStats = jsonl.Stats

// RepairReport says what opening a store had to fix; FileRepair is the
// repair of one file.
type (
	RepairReport = jsonl.RepairReport
	FileRepair   = jsonl.FileRepair
)

// JSONLStore is the durable PendingStore: an append-only JSONL file beside
// sealed segments, dead-letter and quarantine files. It is safe for
// concurrent use; Append never waits for a Replay.
type JSONLStore struct {
	s *jsonl.Store
}

var _ PendingStore = (*JSONLStore)(nil)

// OpenJSONLStore opens (or creates) the store whose active file is path,
// for example ~/.shelltime/sync-pending.jsonl. It creates missing parent
// directories (0700), refuses a symlink at path, and takes the store's lock
// or fails at once with ErrStoreLocked. Then it repairs what a crash may
// have left (see RepairReport): a torn last line is cut, unreadable lines
// go to the quarantine file, a file written by the original implementation
// (one bare JSON payload a line) is rewritten as records, and leftovers of
// an interrupted replay are resolved. Damage is never fatal. Opening does
// not read what the store's ledger (PATH.ledger) already counts: sealed
// segments, and the active file up to where Close left it; those are
// checked line by line when they are replayed. A file the ledger does not
// know, or no longer matches, is read whole. An invalid cfg, or an empty
// path, fails with ErrInvalidConfig.
func OpenJSONLStore(path string, cfg StoreConfig) (*JSONLStore, error) {
	s, err := jsonl.Open(path, jsonl.Config{
		Sync:            cfg.Sync,
		SyncInterval:    cfg.SyncInterval,
		MaxBytes:        cfg.MaxBytes,
		MaxPayloadBytes: cfg.MaxPayloadBytes,
		MaxAttempts:     cfg.MaxAttempts,
		SegmentBytes:    cfg.SegmentBytes,
		Logger:          cfg.Logger,
	})
	if err != nil {
		return nil, err
	}
	return &JSONLStore{s: s}, nil
}

// Append stores payload as a new record and returns nil once it is
// written (and, under SyncAlways, fsynced). It fails with
// ErrPayloadTooLarge or ErrStoreFull (the caller keeps the payload), with
// ctx.Err() if ctx is already done, or with ErrStoreClosed. A failed write
// is cut back so no partial line remains. Under SyncAlways a failed fsync
// fails every Append it covered, with an error wrapping the fsync's, and
// cuts their records back, so the callers keep their payloads; no later
// fsync is taken as proof for them.
func (s *JSONLStore) Append(ctx context.Context, payload []byte) error {
	return s.s.Append(ctx, payload)
}

// Replay calls fn for every pending record, oldest first, as
// PendingStore.Replay documents; a Permanent error dead-letters the record
// at once. Records appended while it runs are left for the next Replay.
// Only one Replay runs at a time; another waits (or returns ctx.Err()).
// The returned error is ctx.Err() when ctx ended, or an I/O error, in
// which case nothing was removed beyond the replay's last checkpoint: as
// it goes, a replay saves every 100 ms how far every record is settled
// (the store's ledger, P.ledger), so a crash or an error repeats at most
// the records settled since. (A failed directory fsync after the
// replay's commit is only logged: the replay is done, and a power loss
// could at worst bring its records back, to be republished again.)
func (s *JSONLStore) Replay(ctx context.Context, fn func(context.Context, Record) error) (ReplayResult, error) {
	return s.ReplayWindow(ctx, nil, fn)
}

// ReplayWindow is Replay with up to window() calls of fn running at once
// (nil: one at a time); their verdicts still apply in the records' order,
// so kept records keep their places (see WindowReplayer).
func (s *JSONLStore) ReplayWindow(ctx context.Context, window func() int, fn func(context.Context, Record) error) (ReplayResult, error) {
	res, err := s.s.ReplayWindow(ctx, window, func(ctx context.Context, r jsonl.Record) error {
		return engineVerdict(fn(ctx, Record(r)))
	})
	return ReplayResult(res), err
}

// AppendID is Append that returns the new record's ID (see IDAppender).
func (s *JSONLStore) AppendID(ctx context.Context, payload []byte) (string, error) {
	return s.s.AppendID(ctx, payload)
}

// AppendMessage is AppendID for the payload of the message messageUUID,
// which the record keeps as Record.MessageID (see MessageAppender). A UUID
// outside the letters, digits and "-_." a record ID uses is not kept.
func (s *JSONLStore) AppendMessage(ctx context.Context, payload []byte, messageUUID string) (string, error) {
	return s.s.AppendMessage(ctx, payload, messageUUID)
}

// SettleLate removes the record with this ID at the next replay, without
// delivering it, counted as republished (see Tombstoner).
func (s *JSONLStore) SettleLate(id string) { s.s.SettleLate(id) }

// Discard removes the record with this ID at the next replay, without
// delivering it or counting it as republished: it is a copy of a record
// the store keeps (see Tombstoner).
func (s *JSONLStore) Discard(id string) { s.s.Discard(id) }

var (
	_ WindowReplayer  = (*JSONLStore)(nil)
	_ IDAppender      = (*JSONLStore)(nil)
	_ MessageAppender = (*JSONLStore)(nil)
	_ Tombstoner      = (*JSONLStore)(nil)
)

// engineVerdict translates a callback's error into the engine's terms (see
// PendingStore.Replay).
func engineVerdict(err error) error {
	switch {
	case err == nil:
		return nil
	case IsPermanent(err):
		return markErr(jsonl.ErrDeadLetter, err)
	}
	if errors.Is(err, ErrOpen) {
		err = markErr(jsonl.ErrNotAttempted, err)
	}
	if p, ok := RespilledPayload(err); ok {
		return jsonl.WithPayload(err, p)
	}
	return err
}

// RequeueDead moves the dead-lettered records back to pending with
// Attempts reset to zero, keeping their IDs, and returns how many it
// moved. They are replayed after the segments sealed before the call and
// before the records in the active file; damaged lines of the dead-letter
// file go to the quarantine. Pending records never pass MaxBytes: in a
// store over its bound, the oldest that fit are moved and the error wraps
// ErrStoreFull and says how many stay dead-lettered. The moved records are
// durable as pending before the dead-letter file is deleted, so a crash in
// between leaves them in both places (re-delivered, never lost). An error
// that comes after they became pending still comes with their count, and
// a later call finishes the job without moving them twice.
func (s *JSONLStore) RequeueDead(ctx context.Context) (int, error) { return s.s.RequeueDead(ctx) }

// PurgeResult says what Purge removed.
type PurgeResult = jsonl.PurgeResult

// Purge removes every record the store holds, on purpose: pending records
// (the active file is emptied, segments removed), the dead-letter and
// quarantine files. It is the supported way to get rid of a record that
// must never be sent (a secret typed into the shell): deleting the file
// under a running store does not work, since the store restores it from
// its open descriptor. It waits for a running Replay or RequeueDead (or
// returns ctx.Err()); appends go on afterwards. The files' blocks are
// freed, not overwritten. `pendingctl purge` does the same for a store no
// daemon holds.
func (s *JSONLStore) Purge(ctx context.Context) (PurgeResult, error) { return s.s.Purge(ctx) }

// Stats returns a snapshot of the store's counters.
func (s *JSONLStore) Stats() StoreStats { return s.s.Stats() }

// RepairReport says what opening the store repaired.
func (s *JSONLStore) RepairReport() RepairReport { return s.s.RepairReport() }

// Path returns the store's active file path, absolute.
func (s *JSONLStore) Path() string { return s.s.Path() }

// DeadPath returns the path of the store's dead-letter file (it may not
// exist).
func (s *JSONLStore) DeadPath() string { return s.s.DeadPath() }

// QuarantinePath returns the path of the store's quarantine file, which
// holds the lines that could not be read, byte for byte (it may not exist).
func (s *JSONLStore) QuarantinePath() string { return s.s.QuarantinePath() }

// Close fsyncs the active file and releases the store and its lock. It
// waits for a running Replay or RequeueDead to finish (cancel its context
// first for a prompt close). It is safe to call more than once.
func (s *JSONLStore) Close() error { return s.s.Close() }
