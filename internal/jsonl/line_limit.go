package jsonl

// The reader's line limit. StoreConfig promises that lowering
// MaxPayloadBytes never makes a stored record unreadable, but a reader
// sized from the current limit alone would find a line written under a
// larger one too long and quarantine it. So the store records in the
// ledger (MaxLine) a bound on the longest line it has written, before the
// line is written (a kill -9 right after cannot lose it), and reads with
// the larger of that bound and its own limit: never a fixed ceiling that
// would buffer a corrupt region without newlines. Lines a reader with the
// default limit takes (every reader's floor, see maxLineSize) need no
// record, so a store with the default limit never writes one; above it
// the bound doubles, so a store writes the ledger for it a handful of
// times in its life, not on every longer line.

// readLimit is the longest line the store reads.
func (s *Store) readLimit() int {
	return max(maxLineSize(s.cfg.MaxPayloadBytes), int(s.lineLimit.Load()))
}

// noteLine records, if need be, that a line of n bytes is about to be
// written (see recordLineLimit).
func (s *Store) noteLine(n int) {
	if n > maxLineSize(DefaultMaxPayloadBytes) && int64(n) > s.lineLimit.Load() {
		s.recordLineLimit(int64(n))
	}
}

// recordLineLimit raises the ledger's MaxLine to cover a line of n bytes
// about to be written. A ledger that cannot be written is logged: the line
// stays readable with the limit it was written under.
func (s *Store) recordLineLimit(n int64) {
	s.ledgerMu.Lock()
	defer s.ledgerMu.Unlock()
	if n <= s.lineLimit.Load() {
		return
	}
	limit := int64(maxLineSize(DefaultMaxPayloadBytes))
	for limit < n {
		limit *= 2
	}
	if err := saveLedger(s.fs, s.path, s.marks, s.nextSeq.Load(), &s.tomb, limit); err != nil {
		s.log.Warn("syncbreaker: ledger: line limit not recorded", "err", err)
		return
	}
	s.tomb.dirty = false
	s.lineLimit.Store(limit)
}
