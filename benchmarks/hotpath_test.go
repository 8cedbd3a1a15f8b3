package benchmarks

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/eapache/go-resiliency/breaker"
	"github.com/failsafe-go/failsafe-go"
	"github.com/failsafe-go/failsafe-go/circuitbreaker"
	"github.com/sony/gobreaker/v2"

	"github.com/syncbreaker/syncbreaker"
)

// The hot path is a closed circuit and a call that succeeds: what a daemon
// pays on every payload while its server is healthy. Each implementation
// gets its own loop body, written out, so no indirect call is added to
// operations that cost a few nanoseconds; the work done per operation is
// what a user of that library writes around a send.

// nopStore and nopRepublisher satisfy syncbreaker.New; a closed circuit
// never touches them.
type nopStore struct{}

func (nopStore) Append(context.Context, []byte) error { return nil }
func (nopStore) Replay(context.Context, func(context.Context, syncbreaker.Record) error) (syncbreaker.ReplayResult, error) {
	return syncbreaker.ReplayResult{}, nil
}
func (nopStore) Close() error { return nil }

type nopRepublisher struct{}

func (nopRepublisher) Republish(context.Context, syncbreaker.Record) error { return nil }

func newSyncbreaker(tb testing.TB) *syncbreaker.Breaker {
	tb.Helper()
	br, err := syncbreaker.New(syncbreaker.Config{}, nopStore{}, nopRepublisher{})
	if err != nil {
		tb.Fatal(err)
	}
	return br
}

// newGobreaker uses gobreaker's zero Settings, as syncbreaker uses its zero
// Config: each library's defaults.
func newGobreaker() *gobreaker.CircuitBreaker[struct{}] {
	return gobreaker.NewCircuitBreaker[struct{}](gobreaker.Settings{Name: "bench"})
}

func newFailsafe() circuitbreaker.CircuitBreaker[any] {
	return circuitbreaker.NewWithDefaults[any]()
}

// newResiliency opens after 10 errors, like syncbreaker's default, and
// stays open an hour.
func newResiliency() *breaker.Breaker {
	return breaker.New(10, 1, time.Hour)
}

var (
	payload1K = make([]byte, 1024)
	errSend   = errors.New("server down")
)

// hotPathImpl is one way to guard a successful call. The names:
//
//	gobreaker            gobreaker v2 CircuitBreaker.Execute (the baseline)
//	syncbreaker          IsOpen, then RecordSuccess: the CircuitBreaker interface
//	syncbreaker-Execute  Breaker.Execute with a 1 KiB payload
//	failsafe             failsafe-go TryAcquirePermit, then RecordSuccess
//	failsafe-Run         failsafe-go's executor: failsafe.With(cb).Run
//	go-resiliency        go-resiliency breaker.Run
//
// serial runs b.N operations on one goroutine; parallel runs one
// goroutine's share of b.RunParallel.
type hotPathImpl struct {
	name     string
	serial   func(b *testing.B)
	parallel func(b *testing.B, pb *testing.PB)
}

func hotPathImpls(tb testing.TB) []hotPathImpl {
	ctx := context.Background()
	send := func(context.Context) error { return nil }
	gbReq := func() (struct{}, error) { return struct{}{}, nil }
	work := func() error { return nil }

	sb := newSyncbreaker(tb)
	sbExec := newSyncbreaker(tb)
	gb := newGobreaker()
	fs := newFailsafe()
	fsExec := failsafe.With[any](newFailsafe())
	rs := newResiliency()

	return []hotPathImpl{
		{
			name: "gobreaker",
			serial: func(b *testing.B) {
				for b.Loop() {
					if _, err := gb.Execute(gbReq); err != nil {
						b.Fatal(err)
					}
				}
			},
			parallel: func(b *testing.B, pb *testing.PB) {
				for pb.Next() {
					if _, err := gb.Execute(gbReq); err != nil {
						b.Error(err)
						return
					}
				}
			},
		},
		{
			name: "syncbreaker",
			serial: func(b *testing.B) {
				for b.Loop() {
					if sb.IsOpen() {
						b.Fatal("open")
					}
					sb.RecordSuccess()
				}
			},
			parallel: func(b *testing.B, pb *testing.PB) {
				for pb.Next() {
					if sb.IsOpen() {
						b.Error("open")
						return
					}
					sb.RecordSuccess()
				}
			},
		},
		{
			name: "syncbreaker-Execute",
			serial: func(b *testing.B) {
				for b.Loop() {
					if err := sbExec.Execute(ctx, payload1K, send); err != nil {
						b.Fatal(err)
					}
				}
			},
			parallel: func(b *testing.B, pb *testing.PB) {
				for pb.Next() {
					if err := sbExec.Execute(ctx, payload1K, send); err != nil {
						b.Error(err)
						return
					}
				}
			},
		},
		{
			name: "failsafe",
			serial: func(b *testing.B) {
				for b.Loop() {
					if !fs.TryAcquirePermit() {
						b.Fatal("open")
					}
					fs.RecordSuccess()
				}
			},
			parallel: func(b *testing.B, pb *testing.PB) {
				for pb.Next() {
					if !fs.TryAcquirePermit() {
						b.Error("open")
						return
					}
					fs.RecordSuccess()
				}
			},
		},
		{
			name: "failsafe-Run",
			serial: func(b *testing.B) {
				for b.Loop() {
					if err := fsExec.Run(work); err != nil {
						b.Fatal(err)
					}
				}
			},
			parallel: func(b *testing.B, pb *testing.PB) {
				for pb.Next() {
					if err := fsExec.Run(work); err != nil {
						b.Error(err)
						return
					}
				}
			},
		},
		{
			name: "go-resiliency",
			serial: func(b *testing.B) {
				for b.Loop() {
					if err := rs.Run(work); err != nil {
						b.Fatal(err)
					}
				}
			},
			parallel: func(b *testing.B, pb *testing.PB) {
				for pb.Next() {
					if err := rs.Run(work); err != nil {
						b.Error(err)
						return
					}
				}
			},
		},
	}
}

// hotPathParallelism are the b.SetParallelism factors; with GOMAXPROCS=2
// they give 2, 4, 8 and 16 goroutines. One goroutine is the serial loop.
var hotPathParallelism = []int{1, 2, 4, 8}

// BenchmarkHotPath: closed circuit, successful call, ns/op and allocs/op,
// by implementation (impl) and number of goroutines (g).
func BenchmarkHotPath(b *testing.B) {
	for _, impl := range hotPathImpls(b) {
		b.Run(fmt.Sprintf("impl=%s/g=1", impl.name), func(b *testing.B) {
			b.ReportAllocs()
			impl.serial(b)
		})
		for _, p := range hotPathParallelism {
			g := p * runtime.GOMAXPROCS(0)
			b.Run(fmt.Sprintf("impl=%s/g=%d", impl.name, g), func(b *testing.B) {
				b.ReportAllocs()
				b.SetParallelism(p)
				b.RunParallel(func(pb *testing.PB) { impl.parallel(b, pb) })
			})
		}
	}
}
