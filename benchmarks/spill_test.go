package benchmarks

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/syncbreaker/syncbreaker"
)

// naiveAppend is how the original inline implementation spilled a payload:
// open, write one line, close, for every payload, with no fsync (and a
// world-readable file). It is no safer than SyncNever: the bytes reach the
// kernel on Write either way and survive kill -9, not power loss.
func naiveAppend(path string, payload []byte) error {
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	line := make([]byte, 0, len(payload)+1)
	line = append(append(line, payload...), '\n')
	if _, err := f.Write(line); err != nil {
		return errors.Join(err, f.Close())
	}
	return f.Close()
}

// spillImpl appends one payload; open prepares a fresh file in dir and
// returns the append function and a close function.
type spillImpl struct {
	name string
	open func(tb testing.TB, dir string) (appendFn func(context.Context, []byte) error, closeFn func() error)
}

func storeSpill(policy syncbreaker.SyncPolicy) spillImpl {
	return spillImpl{
		name: "store-" + policy.String(),
		open: func(tb testing.TB, dir string) (func(context.Context, []byte) error, func() error) {
			cfg := backlogStoreConfig // unbounded, so a long run never fills
			cfg.Sync = policy
			s, err := syncbreaker.OpenJSONLStore(filepath.Join(dir, "pending.jsonl"), cfg)
			if err != nil {
				tb.Fatal(err)
			}
			return s.Append, s.Close
		},
	}
}

// spillImpls are, by name:
//
//	naive           open/write/close per payload (the baseline)
//	store-never     JSONLStore, SyncNever: survives kill -9, not power loss
//	store-interval  JSONLStore, SyncInterval (200 ms): power loss costs that window
//	store-always    JSONLStore, SyncAlways (the default): fsync before Append returns, group commit
var spillImpls = []spillImpl{
	{
		name: "naive",
		open: func(_ testing.TB, dir string) (func(context.Context, []byte) error, func() error) {
			path := filepath.Join(dir, "sync-pending.jsonl")
			return func(_ context.Context, p []byte) error { return naiveAppend(path, p) }, func() error { return nil }
		},
	},
	storeSpill(syncbreaker.SyncNever),
	storeSpill(syncbreaker.SyncInterval),
	storeSpill(syncbreaker.SyncAlways),
}

var spillWriters = []int{1, 2, 4, 8, 16}

// BenchmarkSpill appends 1 KiB payloads from w concurrent writers sharing
// b.N appends; sec/op is wall time per append across all writers, the
// inverse of throughput, and B/s the payload throughput.
func BenchmarkSpill(b *testing.B) {
	payload := recordPayload(0)
	for _, impl := range spillImpls {
		for _, w := range spillWriters {
			b.Run(fmt.Sprintf("impl=%s/writers=%d", impl.name, w), func(b *testing.B) {
				appendFn, closeFn := impl.open(b, b.TempDir())
				b.SetBytes(int64(len(payload)))
				b.ReportAllocs()
				ctx := context.Background()
				var next atomic.Int64
				var wg sync.WaitGroup
				errs := make([]error, w)
				b.ResetTimer()
				for i := range w {
					wg.Go(func() {
						for next.Add(1) <= int64(b.N) {
							if err := appendFn(ctx, payload); err != nil {
								errs[i] = err
								return
							}
						}
					})
				}
				wg.Wait()
				b.StopTimer()
				if err := errors.Join(append(errs, closeFn())...); err != nil {
					b.Fatal(err)
				}
			})
		}
	}
}
