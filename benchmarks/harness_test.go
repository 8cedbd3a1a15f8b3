package benchmarks

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"

	"github.com/syncbreaker/syncbreaker"
)

// These tests check the harness, not the library: that every contender
// does the work it is credited with, so no figure comes from a shortcut.

func TestRecordPayloadIsInlineJSON(t *testing.T) {
	for _, i := range []int{0, 1, 999_999} {
		p := recordPayload(i)
		if len(p) != 1024 {
			t.Errorf("payload %d is %d bytes, want 1024", i, len(p))
		}
		if !json.Valid(p) {
			t.Errorf("payload %d is not valid JSON", i)
		}
	}
	if bytes.Equal(recordPayload(1), recordPayload(2)) {
		t.Error("payloads do not differ")
	}
}

// TestSpillImplsStoreEveryPayload appends from several writers through each
// spill contender and reads every payload back.
func TestSpillImplsStoreEveryPayload(t *testing.T) {
	const writers, each = 4, 25
	for _, impl := range spillImpls {
		t.Run(impl.name, func(t *testing.T) {
			dir := t.TempDir()
			appendFn, closeFn := impl.open(t, dir)
			var wg sync.WaitGroup
			for w := range writers {
				wg.Go(func() {
					for i := range each {
						if err := appendFn(context.Background(), recordPayload(w*each+i)); err != nil {
							t.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			if err := closeFn(); err != nil {
				t.Fatal(err)
			}
			got := map[string]bool{}
			if impl.name == "naive" {
				data, err := os.ReadFile(filepath.Join(dir, "sync-pending.jsonl"))
				if err != nil {
					t.Fatal(err)
				}
				for _, line := range bytes.Split(bytes.TrimSuffix(data, []byte{'\n'}), []byte{'\n'}) {
					got[string(line)] = true
				}
			} else {
				for _, rec := range replayAll(t, filepath.Join(dir, "pending.jsonl")) {
					got[string(rec.Payload)] = true
				}
			}
			for i := range writers * each {
				if !got[string(recordPayload(i))] {
					t.Fatalf("payload %d missing (%d distinct payloads read back)", i, len(got))
				}
			}
		})
	}
}

// replayAll opens the store at path and replays every record, accepting
// all of them.
func replayAll(t *testing.T, path string) []syncbreaker.Record {
	t.Helper()
	s, err := syncbreaker.OpenJSONLStore(path, backlogStoreConfig)
	if err != nil {
		t.Fatal(err)
	}
	var recs []syncbreaker.Record
	_, err = s.Replay(context.Background(), func(_ context.Context, rec syncbreaker.Record) error {
		rec.Payload = bytes.Clone(rec.Payload)
		recs = append(recs, rec)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return recs
}

// TestReplayImplsReadEveryRecord: the store replays the cached backlog in
// order and byte-exact; the naive replay and the raw scan see one line per
// record of the same files.
func TestReplayImplsReadEveryRecord(t *testing.T) {
	const n = 300
	src := cachedBacklog(t, n)
	recs := replayAll(t, cloneStore(t, src, t.TempDir()))
	if len(recs) != n {
		t.Fatalf("store replayed %d records, want %d", len(recs), n)
	}
	for i, rec := range recs {
		if !bytes.Equal(rec.Payload, recordPayload(i)) {
			t.Fatalf("record %d: payload differs from what was appended", i)
		}
	}
	files := backlogFiles(t, src)
	for name, fn := range map[string]func([]string, func([]byte) error) (int, error){"naive": naiveReplay, "rawscan": rawScan} {
		var lines, payloadBytes int
		got, err := fn(files, func(line []byte) error {
			lines++
			payloadBytes += len(line)
			return nil
		})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got != n || lines != n {
			t.Errorf("%s: %d lines (%d published), want %d", name, got, lines, n)
		}
		if payloadBytes < n*1024 {
			t.Errorf("%s: %d bytes published, want at least %d", name, payloadBytes, n*1024)
		}
	}
}

// TestCloneStoreLeavesCacheIntact replays a clone to empty and checks that
// the cached files are unchanged and still replay in full.
func TestCloneStoreLeavesCacheIntact(t *testing.T) {
	const n = 200
	src := cachedBacklog(t, n)
	before := hashFiles(t, backlogFiles(t, src))
	if got := len(replayAll(t, cloneStore(t, src, t.TempDir()))); got != n {
		t.Fatalf("first clone replayed %d records, want %d", got, n)
	}
	if after := hashFiles(t, backlogFiles(t, src)); !bytes.Equal(before, after) {
		t.Fatal("replaying a clone changed the cached backlog")
	}
	if got := len(replayAll(t, cloneStore(t, src, t.TempDir()))); got != n {
		t.Fatalf("second clone replayed %d records, want %d", got, n)
	}
}

func hashFiles(t *testing.T, files []string) []byte {
	t.Helper()
	h := sha256.New()
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		h.Write(b)
	}
	return h.Sum(nil)
}

// TestPeakSamplerSeesPeaks holds 64 MiB and 100 goroutines while sampling.
func TestPeakSamplerSeesPeaks(t *testing.T) {
	s := startPeakSampler()
	held := make([]byte, 64*mib)
	for i := range held {
		held[i] = byte(i)
	}
	release := make(chan struct{})
	var wg sync.WaitGroup
	for range 100 {
		wg.Go(func() { <-release })
	}
	heap, gors := s.Stop() // takes a last sample while both are held
	close(release)
	wg.Wait()
	runtime.KeepAlive(held)
	if heap < 64*mib {
		t.Errorf("peak heap %d MiB, want at least 64", heap/mib)
	}
	if gors < 100 {
		t.Errorf("peak goroutines %d, want at least 100", gors)
	}
}
