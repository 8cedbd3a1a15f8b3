package benchmarks

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"testing"
)

// The peers' harness credits each queue with appending, holding, handing
// out and removing records: these check it does all four, at both of its
// settings, so no figure comes from work left undone.

// TestPeersKeepAndRemoveEveryRecord appends from several writers, reopens
// the queue, drains it, and checks every payload came back once, still
// intact after the queue is closed (so the consumer owned it), and that
// the records are gone, in the queue and after reopening it.
func TestPeersKeepAndRemoveEveryRecord(t *testing.T) {
	const writers, each = 4, 25
	for _, p := range peers {
		for _, durable := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/durable=%v", p.name, durable), func(t *testing.T) {
				dir := t.TempDir()
				q := mustOpenPeer(t, p, dir, durable)
				var wg sync.WaitGroup
				for w := range writers {
					wg.Go(func() {
						for i := range each {
							if err := q.Append(context.Background(), recordPayload(w*each+i)); err != nil {
								t.Error(err)
								return
							}
						}
					})
				}
				wg.Wait()
				mustClose(t, q)

				q = mustOpenPeer(t, p, dir, durable)
				if n, err := q.Len(); err != nil || n != writers*each {
					t.Fatalf("reopened queue holds %d records (%v), want %d", n, err, writers*each)
				}
				var got [][]byte
				n, err := q.Drain(func(b []byte) { got = append(got, b) })
				if err != nil || n != writers*each || len(got) != n {
					t.Fatalf("drained %d (%d handed out, %v), want %d", n, len(got), err, writers*each)
				}
				if left, err := q.Len(); err != nil || left != 0 {
					t.Fatalf("%d records left after the drain (%v)", left, err)
				}
				mustClose(t, q)
				seen := map[string]bool{}
				for _, b := range got {
					seen[string(b)] = true
				}
				for i := range writers * each {
					if !seen[string(recordPayload(i))] {
						t.Fatalf("payload %d missing or changed after close (%d distinct)", i, len(seen))
					}
				}

				q = mustOpenPeer(t, p, dir, durable)
				defer mustClose(t, q)
				if left, err := q.Len(); err != nil || left != 0 {
					t.Fatalf("reopened after the drain: %d records (%v), want 0", left, err)
				}
				if n, err := q.Drain(func([]byte) {}); err != nil || n != 0 {
					t.Fatalf("second drain handed out %d (%v), want 0", n, err)
				}
			})
		}
	}
}

// TestPeerBacklogsDrainInOrder: each cached backlog, copied, holds n
// records that drain in order and byte-exact, and the copy leaves the
// cache whole for the next round.
func TestPeerBacklogsDrainInOrder(t *testing.T) {
	const n = 300
	for _, d := range drainPeers {
		t.Run(d.name, func(t *testing.T) {
			p := peerNamed(d.peer)
			src := peerBacklog(t, p, n)
			for round := range 2 {
				q := mustOpenPeer(t, p, copyDir(t, src, t.TempDir()), d.durable)
				i := 0
				got, err := q.Drain(func(b []byte) {
					if !bytes.Equal(b, recordPayload(i)) {
						t.Errorf("round %d: record %d differs from what was appended", round, i)
					}
					i++
				})
				if err != nil || got != n || i != n {
					t.Fatalf("round %d: drained %d (%d handed out, %v), want %d", round, got, i, err, n)
				}
				if left, err := q.Len(); err != nil || left != 0 {
					t.Fatalf("round %d: %d left (%v)", round, left, err)
				}
				mustClose(t, q)
			}
		})
	}
}

// TestRawReadSeesEveryLine: the physical limit reads each of the store's
// lines.
func TestRawReadSeesEveryLine(t *testing.T) {
	const n = 300
	got, err := rawRead(backlogFiles(t, cachedBacklog(t, n)))
	if err != nil || got != n {
		t.Fatalf("rawRead counted %d lines (%v), want %d", got, err, n)
	}
}

func mustOpenPeer(t *testing.T, p peer, dir string, durable bool) peerQueue {
	t.Helper()
	q, err := p.open(dir, durable)
	if err != nil {
		t.Fatal(err)
	}
	return q
}

func mustClose(t *testing.T, q peerQueue) {
	t.Helper()
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
}
