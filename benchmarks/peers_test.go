package benchmarks

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/joncrlsn/dque"
	"github.com/syncbreaker/syncbreaker"
	"github.com/tidwall/wal"
	bolt "go.etcd.io/bbolt"
)

// The disk queues a Go daemon author would pick instead of the store, on
// the store's own workloads: appends of 1 KiB JSON payloads from 1 to 16
// writers, at each queue's documented durable setting (fsync before the
// append returns) and at its fast one; a drain of a backlog (reopen, hand
// every record to the consumer as a payload it owns, remove them all,
// close); and opening a store that holds a backlog.
//
//	store   syncbreaker.JSONLStore: SyncAlways (group commit) or SyncNever;
//	        a read checks every line's CRC32C, decodes its envelope and
//	        validates an inline payload as JSON
//	wal     tidwall/wal (the log under Telegraf's disk buffer), binary
//	        format: fsync after every Write, or NoSync; a read checks only
//	        the uvarint length framing, no checksum
//	bbolt   go.etcd.io/bbolt (under the OpenTelemetry collector's
//	        file_storage), one key per record in one bucket: a Update
//	        transaction per append (two fsyncs at commit), or NoSync (its
//	        docs: for bulk loading only); a read checks the meta pages'
//	        FNV-64a checksum at open and nothing on data pages
//	dque    joncrlsn/dque, gob-encoded items: fsync after every Enqueue and
//	        Dequeue, or turbo (no fsync); a read checks the 4-byte length
//	        framing and that gob decodes, no checksum
//
// Writers of wal and dque queue behind the peer's own mutex, and each
// wal writer takes the next index under the harness's mutex (wal wants
// consecutive indexes); neither has a group commit. bbolt-batch is bbolt
// with db.Batch, its documented way to share a commit between concurrent
// writers.

// peer is one queue under test: open prepares (or reopens) the queue in
// dir at the durable or the fast setting.
type peer struct {
	name string
	open func(dir string, durable bool) (peerQueue, error)
}

// peerQueue is the little every workload needs from a queue.
type peerQueue interface {
	// Append stores one payload; safe for concurrent use.
	Append(ctx context.Context, payload []byte) error
	// Drain hands every record, oldest first, to fn as a payload fn owns,
	// and removes them all.
	Drain(fn func(payload []byte)) (int, error)
	// Len counts the records held.
	Len() (int, error)
	Close() error
}

var peers = []peer{
	{"store", openStorePeer},
	{"wal", openWALPeer},
	{"bbolt", func(dir string, durable bool) (peerQueue, error) { return openBoltPeer(dir, durable, false) }},
	{"bbolt-batch", func(dir string, durable bool) (peerQueue, error) { return openBoltPeer(dir, durable, true) }},
	{"dque", openDQuePeer},
}

func peerNamed(name string) peer {
	for _, p := range peers {
		if p.name == name {
			return p
		}
	}
	panic("no peer " + name)
}

// --- syncbreaker's JSONLStore

type storePeer struct{ s *syncbreaker.JSONLStore }

func openStorePeer(dir string, durable bool) (peerQueue, error) {
	cfg := backlogStoreConfig
	cfg.Sync = syncbreaker.SyncNever
	if durable {
		cfg.Sync = syncbreaker.SyncAlways
	}
	s, err := syncbreaker.OpenJSONLStore(filepath.Join(dir, "pending.jsonl"), cfg)
	if err != nil {
		return nil, err
	}
	return storePeer{s}, nil
}

func (p storePeer) Append(ctx context.Context, b []byte) error { return p.s.Append(ctx, b) }

func (p storePeer) Drain(fn func([]byte)) (int, error) {
	res, err := p.s.Replay(context.Background(), func(_ context.Context, rec syncbreaker.Record) error {
		fn(rec.Payload)
		return nil
	})
	return res.Republished, err
}

func (p storePeer) Len() (int, error) { return int(p.s.Stats().PendingRecords), nil }
func (p storePeer) Close() error      { return p.s.Close() }

// --- tidwall/wal

type walPeer struct {
	mu sync.Mutex // wal wants index = LastIndex+1
	l  *wal.Log
}

func openWALPeer(dir string, durable bool) (peerQueue, error) {
	opts := *wal.DefaultOptions
	opts.NoSync = !durable
	opts.AllowEmpty = true // a drain removes every entry
	l, err := wal.Open(filepath.Join(dir, "wal"), &opts)
	if err != nil {
		return nil, err
	}
	return &walPeer{l: l}, nil
}

func (p *walPeer) Append(_ context.Context, b []byte) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	last, err := p.l.LastIndex()
	if err != nil {
		return err
	}
	return p.l.Write(last+1, b)
}

func (p *walPeer) Drain(fn func([]byte)) (int, error) {
	first, last, err := p.bounds()
	if err != nil || last < first {
		return 0, err
	}
	for i := first; i <= last; i++ {
		b, err := p.l.Read(i) // a copy: NoCopy is off
		if err != nil {
			return int(i - first), err
		}
		fn(b)
	}
	return int(last - first + 1), p.l.TruncateFront(last + 1)
}

func (p *walPeer) bounds() (first, last uint64, err error) {
	if first, err = p.l.FirstIndex(); err != nil {
		return 0, 0, err
	}
	last, err = p.l.LastIndex()
	return first, last, err
}

func (p *walPeer) Len() (int, error) {
	first, last, err := p.bounds()
	return int(last + 1 - first), err
}

func (p *walPeer) Close() error { return p.l.Close() }

// --- go.etcd.io/bbolt

var boltBucket = []byte("pending")

type boltPeer struct {
	db    *bolt.DB
	batch bool
}

func openBoltPeer(dir string, durable, batch bool) (peerQueue, error) {
	db, err := bolt.Open(filepath.Join(dir, "pending.db"), 0o600, &bolt.Options{NoSync: !durable, Timeout: time.Second})
	if err != nil {
		return nil, err
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(boltBucket)
		return err
	}); err != nil {
		return nil, errors.Join(err, db.Close())
	}
	return &boltPeer{db: db, batch: batch}, nil
}

func (p *boltPeer) Append(_ context.Context, b []byte) error {
	put := func(tx *bolt.Tx) error {
		bk := tx.Bucket(boltBucket)
		seq, err := bk.NextSequence()
		if err != nil {
			return err
		}
		return bk.Put(binary.BigEndian.AppendUint64(nil, seq), b)
	}
	if p.batch {
		return p.db.Batch(put)
	}
	return p.db.Update(put)
}

// Drain reads every value in key order in one write transaction, copying
// each (a value is valid only during its transaction), then drops the
// bucket: the cheapest removal bbolt has, and the one a consumer that
// accepts every record would use.
func (p *boltPeer) Drain(fn func([]byte)) (int, error) {
	n := 0
	err := p.db.Update(func(tx *bolt.Tx) error {
		c := tx.Bucket(boltBucket).Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			fn(bytes.Clone(v))
			n++
		}
		if err := tx.DeleteBucket(boltBucket); err != nil {
			return err
		}
		_, err := tx.CreateBucket(boltBucket)
		return err
	})
	return n, err
}

func (p *boltPeer) Len() (int, error) {
	n := 0
	err := p.db.View(func(tx *bolt.Tx) error {
		n = tx.Bucket(boltBucket).Stats().KeyN
		return nil
	})
	return n, err
}

func (p *boltPeer) Close() error { return p.db.Close() }

// --- joncrlsn/dque

// dqueItem is what dque stores (gob-encoded).
type dqueItem struct{ Payload []byte }

// dqueSegmentItems: 1,000 items of 1 KiB a segment file (about 1 MiB).
const dqueSegmentItems = 1000

type dquePeer struct{ q *dque.DQue }

func openDQuePeer(dir string, durable bool) (peerQueue, error) {
	q, err := dque.NewOrOpen("pending", dir, dqueSegmentItems, func() any { return &dqueItem{} })
	if err != nil {
		return nil, err
	}
	if !durable {
		if err := q.TurboOn(); err != nil {
			return nil, errors.Join(err, q.Close())
		}
	}
	return dquePeer{q}, nil
}

func (p dquePeer) Append(_ context.Context, b []byte) error {
	return p.q.Enqueue(&dqueItem{Payload: b})
}

func (p dquePeer) Drain(fn func([]byte)) (int, error) {
	n := 0
	for {
		it, err := p.q.Dequeue() // gob decodes a new item: the payload is the caller's
		if errors.Is(err, dque.ErrEmpty) {
			return n, nil
		}
		if err != nil {
			return n, err
		}
		fn(it.(*dqueItem).Payload)
		n++
	}
}

func (p dquePeer) Len() (int, error) { return p.q.Size(), nil }

func (p dquePeer) Close() error {
	if p.q.Turbo() {
		if err := p.q.TurboOff(); err != nil { // syncs what turbo left unsynced
			return errors.Join(err, p.q.Close())
		}
	}
	return p.q.Close()
}

// --- backlogs

// peerBacklogs caches, per peer and size, a closed queue of n records,
// built once per process with the fast setting (the files are the same
// either way); removed with the store's backlogs by TestMain.
var peerBacklogs = struct {
	mu  sync.Mutex
	dir map[string]string
}{dir: map[string]string{}}

// peerBacklog returns the directory of p's cached backlog of n records.
// Callers work on a copy (copyDir): a drain empties the queue, and bbolt
// and dque write their files in place.
func peerBacklog(tb testing.TB, p peer, n int) string {
	tb.Helper()
	if p.name == "store" {
		return filepath.Dir(cachedBacklog(tb, n))
	}
	if p.name == "bbolt-batch" {
		p = peerNamed("bbolt") // the same files
	}
	key := p.name + "/" + strconv.Itoa(n)
	peerBacklogs.mu.Lock()
	defer peerBacklogs.mu.Unlock()
	if d, ok := peerBacklogs.dir[key]; ok {
		return d
	}
	root := cacheRoot(tb)
	dir := filepath.Join(root, "peer-"+p.name, strconv.Itoa(n))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		tb.Fatal(err)
	}
	q, err := p.open(dir, false)
	if err != nil {
		tb.Fatal(err)
	}
	if bp, ok := q.(*boltPeer); ok {
		// One transaction for the whole build; the file is the same.
		err = bp.db.Update(func(tx *bolt.Tx) error {
			bk := tx.Bucket(boltBucket)
			for i := range n {
				seq, err := bk.NextSequence()
				if err != nil {
					return err
				}
				if err := bk.Put(binary.BigEndian.AppendUint64(nil, seq), recordPayload(i)); err != nil {
					return err
				}
			}
			return nil
		})
	} else {
		for i := range n {
			if err = q.Append(context.Background(), recordPayload(i)); err != nil {
				break
			}
		}
	}
	if err := errors.Join(err, q.Close()); err != nil {
		tb.Fatal(err)
	}
	peerBacklogs.dir[key] = dir
	return dir
}

func cacheRoot(tb testing.TB) string {
	tb.Helper()
	backlogCache.mu.Lock()
	defer backlogCache.mu.Unlock()
	return cacheRootLocked(tb)
}

// copyDir copies the tree of regular files under src (wal and dque keep
// theirs in a subdirectory) into a new directory under parent, lock files
// left out, and returns it.
func copyDir(tb testing.TB, src, parent string) string {
	tb.Helper()
	dst, err := os.MkdirTemp(parent, "q-")
	if err != nil {
		tb.Fatal(err)
	}
	err = filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil || rel == "." {
			return err
		}
		target := filepath.Join(dst, rel)
		switch {
		case d.IsDir():
			return os.Mkdir(target, 0o700)
		case d.Type().IsRegular() && !isLockFile(d.Name()):
			return copyFile(path, target)
		}
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	return dst
}

// isLockFile: a lock file is made anew by whoever opens the copy.
func isLockFile(name string) bool {
	return name == "lock.lock" || filepath.Ext(name) == ".lock"
}

// dirBytes is the size of every file under dir.
func dirBytes(tb testing.TB, dir string) int64 {
	tb.Helper()
	var n int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		fi, err := d.Info()
		if err == nil {
			n += fi.Size()
		}
		return err
	})
	if err != nil {
		tb.Fatal(err)
	}
	return n
}

// rawRead reads files front to back in 64 KiB blocks and counts their
// newlines: the physical limit of any drain of the store's files (the
// same bytes, read once, nothing checked, nothing copied out, nothing
// removed).
func rawRead(files []string) (int, error) {
	buf := make([]byte, 64<<10)
	lines := 0
	for _, name := range files {
		f, err := os.Open(name)
		if err != nil {
			return lines, err
		}
		for {
			n, err := f.Read(buf)
			lines += bytes.Count(buf[:n], []byte{'\n'})
			if err == io.EOF {
				break
			}
			if err != nil {
				return lines, errors.Join(err, f.Close())
			}
		}
		if err := f.Close(); err != nil {
			return lines, err
		}
	}
	return lines, nil
}

// --- benchmarks

var peerWriters = []int{1, 8, 16}

// BenchmarkPeerAppendDurable: w writers share b.N appends of a 1 KiB
// payload, each returning only once its record is fsynced (the store's
// SyncAlways, each peer's default). sec/op is wall time per append.
func BenchmarkPeerAppendDurable(b *testing.B) { benchPeerAppend(b, true, peerWriters) }

// BenchmarkPeerAppendFast: the same without fsync (the store's SyncNever,
// wal's NoSync, bbolt's NoSync, dque's turbo). Every contender's bytes
// reach the kernel before the append returns: all survive kill -9, none
// power loss.
func BenchmarkPeerAppendFast(b *testing.B) { benchPeerAppend(b, false, []int{1, 8}) }

func benchPeerAppend(b *testing.B, durable bool, writers []int) {
	payload := recordPayload(0)
	for _, p := range peers {
		if p.name == "bbolt-batch" && !durable {
			continue // without fsync a batch saves nothing worth a column
		}
		for _, w := range writers {
			b.Run(fmt.Sprintf("impl=%s/writers=%d", p.name, w), func(b *testing.B) {
				q, err := p.open(b.TempDir(), durable)
				if err != nil {
					b.Fatal(err)
				}
				b.SetBytes(int64(len(payload)))
				b.ReportAllocs()
				var next atomic.Int64
				var wg sync.WaitGroup
				errs := make([]error, w)
				b.ResetTimer()
				for i := range w {
					wg.Go(func() {
						for next.Add(1) <= int64(b.N) {
							if err := q.Append(context.Background(), payload); err != nil {
								errs[i] = err
								return
							}
						}
					})
				}
				wg.Wait()
				b.StopTimer()
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
				if err := errors.Join(append(errs, q.Close())...); err != nil {
					b.Fatal(err)
				}
			})
		}
	}
}

// drainSizes: the drain target's 100,000 records (about 110 MB of files),
// 10,000 in quick mode.
func drainSizes() []int {
	if testing.Short() {
		return []int{10_000}
	}
	return []int{100_000}
}

// drainPeers are the drain's columns: each queue at its durable setting
// (removals fsynced as the queue does them: the store at the end of the
// replay and at its 100 ms checkpoints, wal once, bbolt at the commit,
// dque after every Dequeue), dque also in turbo, and rawread.
var drainPeers = []struct {
	name    string
	peer    string
	durable bool
}{
	{"store", "store", true},
	{"wal", "wal", true},
	{"bbolt", "bbolt", true},
	{"dque", "dque", true},
	{"dque-turbo", "dque", false},
}

// BenchmarkPeerDrain reopens a closed queue of n records, hands each to a
// consumer as a payload it owns, removes them all and closes the queue;
// records/s over the whole of it. The files are in the page cache (each
// round copies them first), so this is CPU and fsync, not the disk.
// rawread is the physical limit: the store's files read once.
func BenchmarkPeerDrain(b *testing.B) {
	for _, n := range drainSizes() {
		for _, d := range drainPeers {
			b.Run(fmt.Sprintf("impl=%s/records=%s", d.name, sizeName(n)), func(b *testing.B) {
				p := peerNamed(d.peer)
				src := peerBacklog(b, p, n)
				parent := b.TempDir()
				b.SetBytes(dirBytes(b, src)) // MB/s: of each format's own files
				b.ReportAllocs()
				var peak uint64
				b.ResetTimer()
				for range b.N {
					b.StopTimer()
					dir := copyDir(b, src, parent)
					sampler := startPeakSampler()
					b.StartTimer()
					q, err := p.open(dir, d.durable)
					if err != nil {
						b.Fatal(err)
					}
					got, err := q.Drain(func([]byte) {})
					if err := errors.Join(err, q.Close()); err != nil {
						b.Fatal(err)
					}
					b.StopTimer()
					heap, _ := sampler.Stop()
					peak = max(peak, heap)
					if got != n {
						b.Fatalf("drained %d of %d records", got, n)
					}
					if err := os.RemoveAll(dir); err != nil {
						b.Fatal(err)
					}
					b.StartTimer()
				}
				reportReplay(b, n, peak)
			})
		}
		b.Run(fmt.Sprintf("impl=rawread/records=%s", sizeName(n)), func(b *testing.B) {
			files := backlogFiles(b, cachedBacklog(b, n))
			var size int64
			for _, f := range files {
				fi, err := os.Stat(f)
				if err != nil {
					b.Fatal(err)
				}
				size += fi.Size()
			}
			b.SetBytes(size)
			b.ReportAllocs()
			for range b.N {
				got, err := rawRead(files)
				if err != nil {
					b.Fatal(err)
				}
				if got != n {
					b.Fatalf("read %d of %d lines", got, n)
				}
			}
			reportReplay(b, n, 0)
		})
	}
}

// BenchmarkPeerOpen opens a queue of n records left by a clean close, at
// its durable setting, and closes it again: what a daemon pays at every
// start before its first append.
func BenchmarkPeerOpen(b *testing.B) {
	for _, n := range drainSizes() {
		for _, p := range peers {
			if p.name == "bbolt-batch" {
				continue // opens as bbolt does
			}
			b.Run(fmt.Sprintf("impl=%s/records=%s", p.name, sizeName(n)), func(b *testing.B) {
				dir := copyDir(b, peerBacklog(b, p, n), b.TempDir())
				b.ReportAllocs()
				for range b.N {
					q, err := p.open(dir, true)
					if err != nil {
						b.Fatal(err)
					}
					if err := q.Close(); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
