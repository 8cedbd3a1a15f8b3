package jsonl

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Benchmarks, not run in CI. For example:
//
//	go test -run '^$' -bench . -benchtime 2000x .
//	SYNCBREAKER_BENCH_MILLION=1 go test -run '^$' -bench Replay .

var benchPayload = func() []byte {
	p := bytes.Repeat([]byte("x"), 1024-16)
	return append(append([]byte(`{"cmd":"`), p...), `"}`...)[:1024]
}()

func BenchmarkAppend(b *testing.B) {
	for _, policy := range []SyncPolicy{SyncAlways, SyncInterval, SyncNever} {
		for _, conc := range []int{1, 8} {
			b.Run(fmt.Sprintf("%s/goroutines=%d", policy, conc), func(b *testing.B) {
				cfg := Config{Sync: policy, MaxBytes: -1}
				var fsyncs atomic.Int64
				if policy == SyncAlways {
					// Count fsyncs to show how many records each one covers.
					cfg.fs = &faultFS{fail: func(op, _ string) error {
						if op == "sync" {
							fsyncs.Add(1)
						}
						return nil
					}}
				}
				s, err := Open(filepath.Join(b.TempDir(), "p.jsonl"), cfg)
				if err != nil {
					b.Fatal(err)
				}
				defer s.Close()
				b.SetBytes(int64(len(benchPayload)))
				b.ReportAllocs()
				b.ResetTimer()
				runConcurrent(b, conc, func() error { return s.Append(context.Background(), benchPayload) })
				b.StopTimer()
				if n := fsyncs.Load(); n > 0 {
					b.ReportMetric(float64(b.N)/float64(n), "records/fsync")
				}
			})
		}
	}
	// The original implementation: open, write, close per payload.
	for _, conc := range []int{1, 8} {
		b.Run(fmt.Sprintf("naive-open-write-close/goroutines=%d", conc), func(b *testing.B) {
			path := filepath.Join(b.TempDir(), "p.jsonl")
			var mu sync.Mutex
			b.SetBytes(int64(len(benchPayload)))
			b.ReportAllocs()
			runConcurrent(b, conc, func() error {
				mu.Lock()
				defer mu.Unlock()
				f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
				if err != nil {
					return err
				}
				if _, err := f.Write(append(benchPayload, '\n')); err != nil {
					return err
				}
				return f.Close()
			})
		})
	}
}

func runConcurrent(b *testing.B, conc int, op func() error) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range conc {
		wg.Go(func() {
			for next.Add(1) <= int64(b.N) {
				if err := op(); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
}

// peakHeap samples the live heap while f runs.
func peakHeap(f func()) (peakMiB float64) {
	runtime.GC()
	var base runtime.MemStats
	runtime.ReadMemStats(&base)
	var peak atomic.Uint64
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		var ms runtime.MemStats
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapAlloc > peak.Load() {
				peak.Store(ms.HeapAlloc)
			}
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	}()
	f()
	close(stop)
	<-done
	if peak.Load() < base.HeapAlloc {
		return 0
	}
	return float64(peak.Load()-base.HeapAlloc) / (1 << 20)
}

func replaySizes() []int {
	sizes := []int{10_000, 100_000}
	if v := os.Getenv("SYNCBREAKER_BENCH_MILLION"); v != "" {
		sizes = append(sizes, 1_000_000)
	}
	return sizes
}

func BenchmarkReplay(b *testing.B) {
	for _, n := range replaySizes() {
		b.Run("store/n="+strconv.Itoa(n), func(b *testing.B) {
			dir := b.TempDir()
			path := filepath.Join(dir, "p.jsonl")
			var peak float64
			for b.Loop() {
				b.StopTimer()
				s, err := Open(path, Config{Sync: SyncNever, MaxBytes: -1})
				if err != nil {
					b.Fatal(err)
				}
				for range n {
					if err := s.Append(context.Background(), benchPayload); err != nil {
						b.Fatal(err)
					}
				}
				b.StartTimer()
				peak = max(peak, peakHeap(func() {
					got := 0
					if _, err := s.Replay(context.Background(), func(context.Context, Record) error { got++; return nil }); err != nil || got != n {
						b.Fatal(err, got)
					}
				}))
				b.StopTimer()
				_ = s.Close()
				b.StartTimer()
			}
			b.ReportMetric(peak, "peak-heap-MiB")
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/record")
		})
		// The floor: a bufio.Reader line scan of a file of the same
		// records, with no decoding at all.
		b.Run("raw-line-scan/n="+strconv.Itoa(n), func(b *testing.B) {
			path := filepath.Join(b.TempDir(), "p.jsonl")
			f, err := os.Create(path)
			if err != nil {
				b.Fatal(err)
			}
			w := bufio.NewWriter(f)
			var line []byte
			for range n {
				line = appendRecord(line[:0], Record{ID: "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b", Payload: benchPayload, EnqueuedAt: time.Now()})
				_, _ = w.Write(line)
			}
			if err := errors.Join(w.Flush(), f.Close()); err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				f, err := os.Open(path)
				if err != nil {
					b.Fatal(err)
				}
				r := bufio.NewReaderSize(f, 64<<10)
				got := 0
				for {
					if _, err := r.ReadSlice('\n'); err != nil {
						break
					}
					got++
				}
				_ = f.Close()
				if got != n {
					b.Fatal(got)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/record")
		})
		b.Run("naive-read-all/n="+strconv.Itoa(n), func(b *testing.B) {
			path := filepath.Join(b.TempDir(), "p.jsonl")
			f, err := os.Create(path)
			if err != nil {
				b.Fatal(err)
			}
			w := bufio.NewWriter(f)
			for range n {
				_, _ = w.Write(benchPayload)
				_ = w.WriteByte('\n')
			}
			_ = w.Flush()
			_ = f.Close()
			var peak float64
			for b.Loop() {
				peak = max(peak, peakHeap(func() {
					// What the original did: read it all, split, keep the lines.
					data, err := os.ReadFile(path)
					if err != nil {
						b.Fatal(err)
					}
					var lines [][]byte
					sc := bufio.NewScanner(bytes.NewReader(data))
					for sc.Scan() {
						lines = append(lines, bytes.Clone(sc.Bytes()))
					}
					if len(lines) != n {
						b.Fatal(len(lines))
					}
				}))
			}
			b.ReportMetric(peak, "peak-heap-MiB")
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/record")
		})
	}
}

// BenchmarkOpen opens a store of n 1 KiB records (64 MiB segments, the
// rest in the active file) and closes it: the time a daemon's restart
// pays. The store is written under SyncInterval (1 ms), so the ledger
// holds every sealed segment's count and, every 4 MiB, the active file's.
// "ledger" opens it as a clean Close left it; "killed" as a kill -9 would
// have, with the ledger as it was before Close (the active file's entry
// the last periodic one, so the rest of the file is read); "scan" with its
// ledger deleted, which reads every record as before the ledger.
//
//	go test -run '^$' -bench 'Open/' -benchmem ./internal/jsonl/
//	SYNCBREAKER_BENCH_MILLION=1 go test -run '^$' -bench 'Open/' -benchmem ./internal/jsonl/
func BenchmarkOpen(b *testing.B) {
	sizes := []int{10_000, 100_000}
	if os.Getenv("SYNCBREAKER_BENCH_MILLION") != "" {
		sizes = append(sizes, 1_000_000)
	}
	cfg := Config{Sync: SyncInterval, SyncInterval: time.Millisecond, MaxBytes: -1}
	for _, n := range sizes {
		path := filepath.Join(b.TempDir(), "p.jsonl")
		s, err := Open(path, cfg)
		if err != nil {
			b.Fatal(err)
		}
		for range n {
			if err := s.Append(context.Background(), benchPayload); err != nil {
				b.Fatal(err)
			}
		}
		time.Sleep(50 * time.Millisecond) // the last background fsync
		killed, err := os.ReadFile(path + ledgerSuffix)
		if err != nil {
			b.Fatal(err)
		}
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
		clean, err := os.ReadFile(path + ledgerSuffix)
		if err != nil {
			b.Fatal(err)
		}
		for _, mode := range []string{"ledger", "killed", "scan"} {
			b.Run(fmt.Sprintf("%s/n=%d", mode, n), func(b *testing.B) {
				for b.Loop() {
					b.StopTimer()
					var err error
					switch mode {
					case "ledger":
						err = os.WriteFile(path+ledgerSuffix, clean, 0o600)
					case "killed":
						err = os.WriteFile(path+ledgerSuffix, killed, 0o600)
					case "scan":
						err = os.Remove(path + ledgerSuffix)
					}
					if err != nil {
						b.Fatal(err)
					}
					b.StartTimer()
					s, err := Open(path, cfg)
					if err != nil {
						b.Fatal(err)
					}
					if got := s.Stats().PendingRecords; got != int64(n) {
						b.Fatalf("open counted %d of %d records", got, n)
					}
					b.StopTimer()
					if err := s.Close(); err != nil {
						b.Fatal(err)
					}
					b.StartTimer()
				}
			})
		}
	}
}

// BenchmarkOpenCleanClose opens a store of 300,000 1 KiB records (64 MiB
// segments, the rest in the active file) after a clean Close, written
// under each policy: constant time under every one (issue 19, item 5:
// SyncNever used to scan every sealed segment, because its seals record no
// counts; Close now fsyncs those segments and records them).
//
//	go test -run '^$' -bench 'OpenCleanClose' -benchmem ./internal/jsonl/
func BenchmarkOpenCleanClose(b *testing.B) {
	const n = 300_000
	for _, sync := range []SyncPolicy{SyncInterval, SyncNever} {
		cfg := Config{Sync: sync, SyncInterval: time.Millisecond, MaxBytes: -1}
		path := filepath.Join(b.TempDir(), "p.jsonl")
		s, err := Open(path, cfg)
		if err != nil {
			b.Fatal(err)
		}
		for range n {
			if err := s.Append(context.Background(), benchPayload); err != nil {
				b.Fatal(err)
			}
		}
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
		// Each open starts from the ledger as that Close left it: an open
		// that scans learns the counts and saves them.
		clean, err := os.ReadFile(path + ledgerSuffix)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(sync.String(), func(b *testing.B) {
			for b.Loop() {
				b.StopTimer()
				if err := os.WriteFile(path+ledgerSuffix, clean, 0o600); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				s, err := Open(path, cfg)
				if err != nil {
					b.Fatal(err)
				}
				if got := s.Stats().PendingRecords; got != n {
					b.Fatalf("open counted %d of %d records", got, n)
				}
				b.StopTimer()
				if err := s.Close(); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
		})
	}
}

// BenchmarkOpenLegacy opens a file the original implementation wrote (one
// bare 1 KiB JSON payload a line): the first open rewrites it as records
// under derived IDs, which is what an upgrade pays once.
//
//	go test -run '^$' -bench OpenLegacy -benchmem ./internal/jsonl/
func BenchmarkOpenLegacy(b *testing.B) {
	for _, n := range []int{10_000, 200_000} {
		b.Run(fmt.Sprintf("lines=%d", n), func(b *testing.B) {
			// A 1 KiB JSON payload (benchPayload is not JSON: it is cut
			// into its spare capacity, so it is stored as base64).
			payload := fmt.Appendf(nil, `{"cmd":"%s"}`, bytes.Repeat([]byte("x"), 1024-10))
			var legacy bytes.Buffer
			for range n {
				legacy.Write(payload)
				legacy.WriteByte('\n')
			}
			dir := b.TempDir()
			for b.Loop() {
				b.StopTimer()
				path := filepath.Join(dir, "p.jsonl")
				for _, p := range []string{path, path + ledgerSuffix} {
					_ = os.Remove(p)
				}
				if err := os.WriteFile(path, legacy.Bytes(), 0o600); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				s, err := Open(path, Config{Sync: SyncNever, MaxBytes: -1})
				if err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				if got := s.Stats().PendingRecords; got != int64(n) {
					b.Fatalf("migrated %d of %d lines: %+v", got, n, s.RepairReport())
				}
				if err := s.Close(); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
			b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "lines/s")
		})
	}
}
