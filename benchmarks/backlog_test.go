package benchmarks

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/syncbreaker/syncbreaker"
	"github.com/syncbreaker/syncbreaker/internal/jsonl"
)

// recordPayload returns the i-th 1 KiB payload of a backlog: a JSON object
// like the shell-history daemon's, so the store keeps it inline (jq can
// read the file) as it would in production.
func recordPayload(i int) []byte {
	const size = 1024
	head := `{"seq":` + strconv.Itoa(i) + `,"cmd":"`
	tail := `"}`
	fill := size - len(head) - len(tail)
	var sb strings.Builder
	sb.Grow(size)
	sb.WriteString(head)
	for j := range fill {
		sb.WriteByte('a' + byte((i+j)%26))
	}
	sb.WriteString(tail)
	return []byte(sb.String())
}

// backlogStoreConfig opens the benchmark backlogs: everything else at its
// default, but no size bound, since 1,000,000 records of 1 KiB pass the
// default 1 GiB MaxBytes (the store would refuse the last ~90,000 with
// ErrStoreFull, as documented).
var backlogStoreConfig = syncbreaker.StoreConfig{MaxBytes: -1}

// backlogCache holds one store per backlog size, built once per process in
// a temporary directory and removed by TestMain.
var backlogCache = struct {
	mu   sync.Mutex
	dir  string
	path map[int]string
}{path: map[int]string{}}

// cachedBacklog returns the path of a closed store holding n 1 KiB records,
// building it the first time. Callers must not open it: they copy it with
// cloneStore first, because a replay empties the store.
func cachedBacklog(tb testing.TB, n int) string {
	tb.Helper()
	backlogCache.mu.Lock()
	defer backlogCache.mu.Unlock()
	if p, ok := backlogCache.path[n]; ok {
		return p
	}
	path := filepath.Join(cacheRootLocked(tb), strconv.Itoa(n), "pending.jsonl")
	if err := buildBacklog(path, n); err != nil {
		tb.Fatal(err)
	}
	backlogCache.path[n] = path
	return path
}

// cacheRootLocked is the cache's directory, made on first use; it
// requires that backlogCache.mu is held.
func cacheRootLocked(tb testing.TB) string {
	tb.Helper()
	if backlogCache.dir == "" {
		dir, err := os.MkdirTemp("", "syncbreaker-bench-")
		if err != nil {
			tb.Fatal(err)
		}
		backlogCache.dir = dir
	}
	return backlogCache.dir
}

// removeBacklogCache deletes every cached backlog, the peers' too
// (peers_test.go).
func removeBacklogCache() error {
	backlogCache.mu.Lock()
	defer backlogCache.mu.Unlock()
	if backlogCache.dir == "" {
		return nil
	}
	err := os.RemoveAll(backlogCache.dir)
	backlogCache.dir, backlogCache.path = "", map[int]string{}
	peerBacklogs.mu.Lock()
	peerBacklogs.dir = map[string]string{}
	peerBacklogs.mu.Unlock()
	return err
}

// buildBacklog appends n payloads through the store's own Append.
// SyncInterval only makes the build faster than the default SyncAlways;
// the files are the same under every policy, and so is the ledger
// (SyncNever's would not count a segment sealed by a roll, which every
// open would then read whole: see the store's sealLocked).
func buildBacklog(path string, n int) error {
	cfg := backlogStoreConfig
	cfg.Sync = syncbreaker.SyncInterval
	s, err := syncbreaker.OpenJSONLStore(path, cfg)
	if err != nil {
		return err
	}
	ctx := context.Background()
	for i := range n {
		if err := s.Append(ctx, recordPayload(i)); err != nil {
			return errors.Join(err, s.Close())
		}
	}
	return s.Close()
}

// backlogFiles returns the store's record files in replay order: sealed
// segments oldest first, then the active file.
func backlogFiles(tb testing.TB, path string) []string {
	tb.Helper()
	l, err := jsonl.Files(path)
	if err != nil {
		tb.Fatal(err)
	}
	files := append([]string(nil), l.Segments...)
	if l.Active != "" {
		files = append(files, l.Active)
	}
	return files
}

// cloneStore makes a private copy of the store at src in a new directory
// under parent and returns its path. Files are hard-linked when the file
// system allows it, which is safe because the store never writes a file in
// place once it holds records other than by appending to the active file,
// and nothing appends during these benchmarks: a replay renames and deletes
// the links, never the cached files' contents (TestCloneStoreLeavesCacheIntact
// checks it).
func cloneStore(tb testing.TB, src, parent string) string {
	tb.Helper()
	dir, err := os.MkdirTemp(parent, "store-")
	if err != nil {
		tb.Fatal(err)
	}
	l, err := jsonl.Files(src)
	if err != nil {
		tb.Fatal(err)
	}
	files := append([]string(nil), l.Segments...)
	if l.Active != "" {
		files = append(files, l.Active)
	}
	for _, f := range files {
		dst := filepath.Join(dir, filepath.Base(f))
		if err := os.Link(f, dst); err != nil {
			if err := copyFile(f, dst); err != nil {
				tb.Fatal(err)
			}
		}
	}
	return filepath.Join(dir, filepath.Base(src))
}

func copyFile(src, dst string) (err error) {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, in.Close()) }()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		return errors.Join(err, out.Close())
	}
	return out.Close()
}

// peakSampler records the peak live heap and goroutine count while an
// operation runs, reading runtime/metrics every millisecond on a goroutine
// of its own (which it counts too, as one goroutine).
type peakSampler struct {
	stop chan struct{}
	done chan struct{}
	heap uint64
	gors uint64
}

var peakMetrics = []string{"/memory/classes/heap/objects:bytes", "/sched/goroutines:goroutines"}

// startPeakSampler collects garbage first, so the peak measures the
// operation rather than what the set-up left behind.
func startPeakSampler() *peakSampler {
	runtime.GC()
	p := &peakSampler{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		samples := make([]metrics.Sample, len(peakMetrics))
		for i, name := range peakMetrics {
			samples[i].Name = name
		}
		t := time.NewTicker(time.Millisecond)
		defer t.Stop()
		for {
			p.sample(samples)
			select {
			case <-p.stop:
				p.sample(samples)
				return
			case <-t.C:
			}
		}
	}()
	return p
}

func (p *peakSampler) sample(samples []metrics.Sample) {
	metrics.Read(samples)
	p.heap = max(p.heap, samples[0].Value.Uint64())
	p.gors = max(p.gors, samples[1].Value.Uint64())
}

// Stop ends sampling (after one last sample) and returns the peaks.
func (p *peakSampler) Stop() (heapBytes, goroutines uint64) {
	close(p.stop)
	<-p.done
	return p.heap, p.gors
}

const mib = 1 << 20

// backlogSizes are the replay and republish backlogs. -short (run.sh's
// quick mode) keeps the small ones.
func backlogSizes(full ...int) []int {
	if testing.Short() {
		return full[:1]
	}
	return full
}

func sizeName(n int) string {
	switch {
	case n%1_000_000 == 0:
		return fmt.Sprintf("%dM", n/1_000_000)
	case n%1000 == 0:
		return fmt.Sprintf("%dk", n/1000)
	default:
		return strconv.Itoa(n)
	}
}
