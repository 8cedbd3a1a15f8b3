package jsonl

// storedBytesLocked is what counts against Config.MaxBytes: the pending
// records plus the dead-letter and quarantine files, each as it stands on
// disk. Replays and RequeueDead move records between them and so never
// need a check; Append, the one way in, is refused past the bound.
// Requires s.mu.
func (s *Store) storedBytesLocked() int64 {
	return s.pendingBytes + s.dead.size.Load() + s.quar.size.Load()
}
