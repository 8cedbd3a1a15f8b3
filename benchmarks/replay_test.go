package benchmarks

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"testing"
	"time"

	"github.com/syncbreaker/syncbreaker"
)

// A replay hands every pending record to a publish function. Here it is a
// no-op, so the figures are the replay's own cost: reading, decoding and
// checksumming (for the store), and settling what was published.
func nopPublish(context.Context, syncbreaker.Record) error { return nil }

// naiveReplay is the original implementation's replay: read every file
// whole, split it into lines, publish each line. (The original then wrote
// the failed lines to a temp file and renamed it over the store, losing
// what was appended meanwhile; with a publish that never fails that step
// writes nothing and is left out.) Memory holds the whole backlog.
func naiveReplay(files []string, publish func([]byte) error) (int, error) {
	// One buffer sized up front, as os.ReadFile sizes its buffer for the
	// single file the original had: growing it file by file would charge
	// the naive way for copies the original never made.
	sizes := make([]int, len(files))
	total := 0
	for i, f := range files {
		fi, err := os.Stat(f)
		if err != nil {
			return 0, err
		}
		sizes[i] = int(fi.Size())
		total += sizes[i]
	}
	all := make([]byte, total)
	off := 0
	for i, name := range files {
		f, err := os.Open(name)
		if err != nil {
			return 0, err
		}
		_, err = io.ReadFull(f, all[off:off+sizes[i]])
		off += sizes[i]
		if err := errors.Join(err, f.Close()); err != nil {
			return 0, err
		}
	}
	lines := bytes.Split(all, []byte{'\n'})
	n := 0
	for _, line := range lines {
		if len(line) == 0 {
			continue
		}
		if err := publish(line); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// rawScan reads the same files line by line with a bufio.Reader and does
// nothing else: the physical limit of any replay of these files.
func rawScan(files []string, publish func([]byte) error) (int, error) {
	n := 0
	for _, name := range files {
		f, err := os.Open(name)
		if err != nil {
			return n, err
		}
		r := bufio.NewReaderSize(f, 64<<10)
		for {
			line, err := r.ReadSlice('\n')
			if len(line) > 0 {
				if perr := publish(line); perr != nil {
					return n, errors.Join(perr, f.Close())
				}
				n++
			}
			if err == io.EOF {
				break
			}
			if err != nil {
				return n, errors.Join(err, f.Close())
			}
		}
		if err := f.Close(); err != nil {
			return n, err
		}
	}
	return n, nil
}

func nopLine([]byte) error { return nil }

// replaySizes: 1,000,000 records is ~1.2 GB of files, built once per run.
func replaySizes() []int { return backlogSizes(10_000, 100_000, 1_000_000) }

// BenchmarkReplay replays a backlog of n 1 KiB records with a no-op publish
// and reports records/s and the peak live heap during the replay. The
// files are in the page cache after the first run (so the figures are the
// CPU cost, not the disk's).
//
//	store    JSONLStore.Replay: decode, CRC32C, settle (the baseline)
//	naive    os.ReadFile + split + publish each line, like the original
//	rawscan  bufio.Reader line scan of the same files, nothing else
func BenchmarkReplay(b *testing.B) {
	for _, n := range replaySizes() {
		b.Run(fmt.Sprintf("impl=store/records=%s", sizeName(n)), func(b *testing.B) {
			src := cachedBacklog(b, n)
			parent := b.TempDir()
			var peak uint64
			var opening time.Duration
			b.ResetTimer()
			for range b.N {
				b.StopTimer()
				path := cloneStore(b, src, parent)
				start := time.Now()
				s, err := syncbreaker.OpenJSONLStore(path, backlogStoreConfig)
				opening += time.Since(start)
				if err != nil {
					b.Fatal(err)
				}
				sampler := startPeakSampler()
				b.StartTimer()
				res, err := s.Replay(context.Background(), nopPublish)
				b.StopTimer()
				heap, _ := sampler.Stop()
				peak = max(peak, heap)
				if err := errors.Join(err, s.Close()); err != nil {
					b.Fatal(err)
				}
				if res.Republished != n || res.Remaining != 0 {
					b.Fatalf("replay settled %d of %d records, %d remain", res.Republished, n, res.Remaining)
				}
				b.StartTimer()
			}
			reportReplay(b, n, peak)
			// Opening counts (and verifies) every pending record; it is not
			// part of the replay's time, but a daemon pays it at start.
			b.ReportMetric(opening.Seconds()/float64(b.N), "open-s/op")
		})
		for _, impl := range []struct {
			name string
			fn   func([]string, func([]byte) error) (int, error)
		}{{"naive", naiveReplay}, {"rawscan", rawScan}} {
			b.Run(fmt.Sprintf("impl=%s/records=%s", impl.name, sizeName(n)), func(b *testing.B) {
				files := backlogFiles(b, cachedBacklog(b, n))
				var peak uint64
				b.ResetTimer()
				for range b.N {
					b.StopTimer()
					sampler := startPeakSampler()
					b.StartTimer()
					got, err := impl.fn(files, nopLine)
					b.StopTimer()
					heap, _ := sampler.Stop()
					peak = max(peak, heap)
					if err != nil {
						b.Fatal(err)
					}
					if got != n {
						b.Fatalf("read %d of %d records", got, n)
					}
					b.StartTimer()
				}
				reportReplay(b, n, peak)
			})
		}
	}
}

func reportReplay(b *testing.B, n int, peakHeap uint64) {
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "records/s")
	b.ReportMetric(float64(peakHeap)/mib, "peak-heap-MiB")
}
