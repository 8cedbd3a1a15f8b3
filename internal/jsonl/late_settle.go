package jsonl

// Late settles. A replay's callback may give up on a record before the
// daemon is done with it (the republisher's settle timeout): the record
// stays pending, and the next replay delivers it again. When the daemon
// then reports it handled after all, SettleLate notes its ID as a
// tombstone, and the next drain that reads the record removes it without
// delivering it: a late handling is not repeated.
//
// A tombstone is only ever an ID the daemon reported handled, so removing
// its record loses nothing. It lives in memory at once and reaches the
// ledger with the next ledger write (a checkpoint, a commit, a seal's
// counts, the active file's entry, or Close): a crash before that costs a
// repeat, never a record. It is dropped once a drain that removed its
// record has committed; tombstones whose record never comes (it was
// delivered again meanwhile) are evicted oldest first past maxTombstones.

// maxTombstones bounds the tombstones kept: far more than a daemon has
// in flight (the republisher's MaxInFlight) when its rounds time out.
const maxTombstones = 4096

// tombstones are the IDs of records handled after their round gave up,
// and of records that are copies of another (see Discard). Guarded by
// Store.ledgerMu.
type tombstones struct {
	ids    map[string]struct{}
	copies map[string]struct{} // the subset that Discard added
	order  []string            // oldest first
	dirty  bool                // changed since the ledger was last written
}

// copyList returns the IDs Discard added, in the order they were added.
func (t *tombstones) copyList() []string {
	if len(t.copies) == 0 {
		return nil
	}
	out := make([]string, 0, len(t.copies))
	for _, id := range t.order {
		if _, ok := t.copies[id]; ok {
			out = append(out, id)
		}
	}
	return out
}

func (t *tombstones) add(id string) {
	if _, ok := t.ids[id]; ok {
		return
	}
	if t.ids == nil {
		t.ids = map[string]struct{}{}
	}
	if len(t.order) >= maxTombstones {
		delete(t.ids, t.order[0])
		delete(t.copies, t.order[0])
		t.order = t.order[1:]
	}
	t.ids[id] = struct{}{}
	t.order = append(t.order, id)
	t.dirty = true
}

func (t *tombstones) drop(ids []string) {
	if len(ids) == 0 {
		return
	}
	for _, id := range ids {
		delete(t.ids, id)
		delete(t.copies, id)
	}
	kept := t.order[:0]
	for _, id := range t.order {
		if _, ok := t.ids[id]; ok {
			kept = append(kept, id)
		}
	}
	clear(t.order[len(kept):])
	t.order = kept
	t.dirty = true
}

// SettleLate reports that the record with this ID was handled after the
// replay that delivered it gave up on it: the next drain removes it
// without delivering it again (see above). It never blocks on I/O.
func (s *Store) SettleLate(id string) {
	if !validID(id) {
		return // no record has it: nothing to remove (and the ledger stays bounded)
	}
	s.ledgerMu.Lock()
	defer s.ledgerMu.Unlock()
	s.tomb.add(id)
	s.tombCount.Store(int64(len(s.tomb.order)))
	s.copyCount.Store(int64(len(s.tomb.copies)))
}

// Discard reports that the record with this ID is a copy of another one
// the daemon keeps (a handler spilled a republished message again, and the
// republished record took the new bytes in its own place): the next drain
// removes it without delivering it and without counting it as
// republished. Like SettleLate it never blocks on I/O, and a crash before
// the next ledger write costs one repeat of the copy, never a record.
func (s *Store) Discard(id string) {
	if !validID(id) {
		return // as for SettleLate
	}
	s.ledgerMu.Lock()
	defer s.ledgerMu.Unlock()
	s.tomb.add(id)
	if s.tomb.copies == nil {
		s.tomb.copies = map[string]struct{}{}
	}
	s.tomb.copies[id] = struct{}{}
	s.tombCount.Store(int64(len(s.tomb.order)))
	s.copyCount.Store(int64(len(s.tomb.copies)))
}

// tombstoned reports whether the record with this ID was settled late or
// discarded as a copy (isCopy).
func (s *Store) tombstoned(id string) (ok, isCopy bool) {
	if s.tombCount.Load() == 0 {
		return false, false
	}
	s.ledgerMu.Lock()
	defer s.ledgerMu.Unlock()
	_, ok = s.tomb.ids[id]
	_, isCopy = s.tomb.copies[id]
	return ok, isCopy
}

// dropTombstones forgets the tombstones of records a committed drain
// removed; the next ledger write records it.
func (s *Store) dropTombstones(ids []string) {
	s.ledgerMu.Lock()
	defer s.ledgerMu.Unlock()
	s.tomb.drop(ids)
	s.tombCount.Store(int64(len(s.tomb.order)))
	s.copyCount.Store(int64(len(s.tomb.copies)))
}
