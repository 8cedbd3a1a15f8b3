package main

import (
	"encoding/json"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// syncPayload is what the daemon sends: a batch of shell commands.
type syncPayload struct {
	Run      string   `json:"run"` // tells this run's payloads from an earlier run's spill file
	Seq      int      `json:"seq"`
	Host     string   `json:"host"`
	Commands []string `json:"commands"`
}

// syncServer stands in for the daemon's backend. It takes latency to
// answer, answers 503 while down, and records what it accepted: each
// payload once, by the idempotency key, as a real backend would.
type syncServer struct {
	run     string
	latency time.Duration
	down    atomic.Bool

	mu         sync.Mutex
	keys       map[string]bool // idempotency keys accepted
	seqs       map[int]bool    // sequence numbers of this run accepted
	duplicates int             // payloads dropped because their key was seen
	earlier    int             // payloads from an earlier run (left in a spill file)
	rejected   int             // requests answered 503
}

func newSyncServer(run string, latency time.Duration) *syncServer {
	return &syncServer{run: run, latency: latency, keys: make(map[string]bool), seqs: make(map[int]bool)}
}

func (s *syncServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	time.Sleep(s.latency) // a real backend takes tens of milliseconds
	if s.down.Load() {
		s.mu.Lock()
		s.rejected++
		s.mu.Unlock()
		http.Error(w, "maintenance", http.StatusServiceUnavailable)
		return
	}
	key := r.Header.Get(idempotencyHeader)
	var p syncPayload
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err == nil {
		err = json.Unmarshal(body, &p)
	}
	if err != nil || key == "" {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.keys[key]:
		s.duplicates++
	case p.Run != s.run:
		s.keys[key] = true
		s.earlier++
	default:
		s.keys[key] = true
		s.seqs[p.Seq] = true
	}
	w.WriteHeader(http.StatusNoContent)
}

// serverCounts is a snapshot of what the server accepted.
type serverCounts struct {
	unique, duplicates, earlier, rejected int
	missing                               []int // sequence numbers never accepted, up to n
}

// counts reports what the server accepted of the sequence numbers 0..n-1.
func (s *syncServer) counts(n int) serverCounts {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := serverCounts{unique: len(s.seqs), duplicates: s.duplicates, earlier: s.earlier, rejected: s.rejected}
	for seq := range n {
		if !s.seqs[seq] {
			c.missing = append(c.missing, seq)
		}
	}
	return c
}
