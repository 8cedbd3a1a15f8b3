package jsonl

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/syncbreaker/syncbreaker/internal/fsx"
	"github.com/syncbreaker/syncbreaker/internal/fsx/fsxtest"
)

// faultFS injects errors into the real filesystem. fail is asked before
// each operation (op is "open", "write", "sync", "truncate", "close",
// "rename", "remove", "syncdir", "readdir", "lstat", "stat", "mkdir",
// "chmod", "lock"); a non-nil error fails it. A failing write first writes
// half its bytes, like a disk that fills up mid-write.
type faultFS struct {
	mu   sync.Mutex
	fail func(op, name string) error
}

func (f *faultFS) check(op, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail == nil {
		return nil
	}
	return f.fail(op, filepath.Base(name))
}

func (f *faultFS) set(fail func(op, name string) error) {
	f.mu.Lock()
	f.fail = fail
	f.mu.Unlock()
}

func (f *faultFS) OpenFile(name string, flag int, perm os.FileMode) (fsx.File, error) {
	if err := f.check("open", name); err != nil {
		return nil, err
	}
	file, err := fsx.OS{}.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return &faultFile{File: file, fs: f}, nil
}

func (f *faultFS) Rename(o, n string) error {
	if err := f.check("rename", o); err != nil {
		return err
	}
	return os.Rename(o, n)
}

func (f *faultFS) Remove(name string) error {
	if err := f.check("remove", name); err != nil {
		return err
	}
	return os.Remove(name)
}

func (f *faultFS) SyncDir(dir string) error {
	if err := f.check("syncdir", dir); err != nil {
		return err
	}
	return fsx.SyncDir(dir)
}

func (f *faultFS) ReadDir(dir string) ([]os.DirEntry, error) {
	if err := f.check("readdir", dir); err != nil {
		return nil, err
	}
	return os.ReadDir(dir)
}

func (f *faultFS) Lstat(name string) (os.FileInfo, error) {
	if err := f.check("lstat", name); err != nil {
		return nil, err
	}
	return os.Lstat(name)
}

func (f *faultFS) Stat(name string) (os.FileInfo, error) {
	if err := f.check("stat", name); err != nil {
		return nil, err
	}
	return os.Stat(name)
}

func (f *faultFS) Mkdir(name string, perm os.FileMode) error {
	if err := f.check("mkdir", name); err != nil {
		return err
	}
	return os.Mkdir(name, perm)
}

func (f *faultFS) Chmod(name string, mode os.FileMode) error {
	if err := f.check("chmod", name); err != nil {
		return err
	}
	return os.Chmod(name, mode)
}

func (f *faultFS) Lock(name string) (io.Closer, error) {
	if err := f.check("lock", name); err != nil {
		return nil, err
	}
	return fsx.Lock(name)
}

func (f *faultFS) LockFile(file fsx.File) error {
	if err := f.check("lockfile", file.Name()); err != nil {
		return err
	}
	return fsx.LockFile(file)
}

func (f *faultFS) SameFile(file fsx.File, name string) (bool, int64, error) {
	if err := f.check("samefile", name); err != nil {
		return false, 0, err
	}
	return fsx.SameFile(file, name)
}

type faultFile struct {
	fsx.File
	fs *faultFS
}

func (f *faultFile) Write(p []byte) (int, error) {
	if err := f.fs.check("write", f.Name()); err != nil {
		n, _ := f.File.Write(p[:len(p)/2])
		return n, err
	}
	return f.File.Write(p)
}

func (f *faultFile) WriteAt(p []byte, off int64) (int, error) {
	if err := f.fs.check("write", f.Name()); err != nil {
		n, _ := f.File.WriteAt(p[:len(p)/2], off)
		return n, err
	}
	return f.File.WriteAt(p, off)
}

func (f *faultFile) Sync() error {
	if err := f.fs.check("sync", f.Name()); err != nil {
		return err
	}
	return f.File.Sync()
}

func (f *faultFile) Chmod(mode os.FileMode) error {
	if err := f.fs.check("chmod", f.Name()); err != nil {
		return err
	}
	return f.File.Chmod(mode)
}

func (f *faultFile) Truncate(n int64) error {
	if err := f.fs.check("truncate", f.Name()); err != nil {
		return err
	}
	return f.File.Truncate(n)
}

// Close releases the descriptor either way, as close(2) does even when it
// reports an error.
func (f *faultFile) Close() error {
	err := f.File.Close()
	if ferr := f.fs.check("close", f.Name()); ferr != nil {
		return ferr
	}
	return err
}

// failOn fails op on files whose name has the given prefix or suffix
// matcher, n times (n < 0: always).
func failOn(op string, match func(string) bool, err error, n int) func(string, string) error {
	return func(o, name string) error {
		if o == op && match(name) && n != 0 {
			n--
			return err
		}
		return nil
	}
}

func isActive(name string) bool { return name == "p.jsonl" }
func isTemp(name string) bool   { return strings.Contains(name, tmpInfix) }
func isSeg(name string) bool    { return strings.Contains(name, segInfix) }
func anyFile(string) bool       { return true }

func TestFaultsOnAppend(t *testing.T) {
	tests := []struct {
		name    string
		fail    func(string, string) error
		wantIs  error
		noSpace bool
	}{
		{"ENOSPC on write", failOn("write", isActive, syscall.ENOSPC, 1), ErrFull, true},
		{"EIO on write", failOn("write", isActive, syscall.EIO, 1), syscall.EIO, false},
		{"EIO on write and on cut back", func(op, name string) error {
			if (op == "write" || op == "truncate") && isActive(name) {
				return syscall.EIO
			}
			return nil
		}, syscall.EIO, false},
		{"EIO on fsync", failOn("sync", isActive, syscall.EIO, 1), syscall.EIO, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			ffs := &faultFS{}
			path := filepath.Join(t.TempDir(), "p.jsonl")
			s := openTestStore(t, path, Config{fs: ffs})
			appendAll(t, s, numbered(3)...)
			ffs.set(tt.fail)
			err := s.Append(ctx, []byte(`"doomed"`))
			require.ErrorIs(t, err, tt.wantIs)
			assert.True(t, strings.HasPrefix(err.Error(), "syncbreaker: "), err.Error())
			ffs.set(nil)
			if tt.noSpace {
				assert.EqualValues(t, 1, s.Stats().RejectedNoSpace)
			}
			appendAll(t, s, []byte(`"after"`))
			require.NoError(t, s.Close())

			// Whatever failed, the file holds only whole records: earlier
			// ones intact, no partial line, the store usable again.
			s = openTestStore(t, path, Config{})
			assert.True(t, s.RepairReport().Clean(), "no partial line left: %+v", s.RepairReport())
			got := payloadsOf(drainAll(t, s))
			// A failed fsync cuts its record back too (see
			// TestFailedFsyncFailsEveryWaiter): its Append failed.
			want := append(numbered(3), []byte(`"after"`))
			assert.Equal(t, want, got)
		})
	}
}

func TestFaultsOnReplay(t *testing.T) {
	tests := []struct {
		name string
		fail func(string, string) error
	}{
		{"EIO on seal fsync", failOn("sync", isActive, syscall.EIO, 1)},
		{"EIO on seal rename", failOn("rename", isActive, syscall.EIO, 1)},
		{"EIO on seal close", failOn("close", isActive, syscall.EIO, 1)},
		{"ENOSPC writing kept records", failOn("write", isTemp, syscall.ENOSPC, 1)},
		{"EIO on temp fsync", failOn("sync", isTemp, syscall.EIO, 1)},
		{"EIO on commit rename", failOn("rename", isTemp, syscall.EIO, 1)},
		{"EIO deleting drained segments", failOn("remove", isSeg, syscall.EIO, -1)},
		{"EIO on directory fsync", failOn("syncdir", anyFile, syscall.EIO, 1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			ffs := &faultFS{}
			path := filepath.Join(t.TempDir(), "p.jsonl")
			s := openTestStore(t, path, Config{fs: ffs})
			appendAll(t, s, numbered(6)...)
			ffs.set(tt.fail)
			// Keep the even records, so the replay has something to write.
			_, _ = s.Replay(ctx, func(_ context.Context, r Record) error {
				if bytes.ContainsAny(r.Payload, "02468") {
					return errors.New("keep")
				}
				return nil
			})
			ffs.set(nil)
			appendAll(t, s, []byte(`"after"`))
			require.NoError(t, s.Close())

			s = openTestStore(t, path, Config{})
			got := payloadsOf(drainAll(t, s))
			// Every record is either still there or was republished; the
			// even ones were never accepted, so they must be there, in order.
			var evens [][]byte
			seen := map[string]int{}
			for _, p := range got {
				seen[string(p)]++
				if bytes.ContainsAny(p, "02468") {
					evens = append(evens, p)
				}
			}
			assert.Equal(t, [][]byte{[]byte(`{"n":0}`), []byte(`{"n":2}`), []byte(`{"n":4}`)}, evens)
			for p, n := range seen {
				assert.Equal(t, 1, n, "no record stored twice: %s", p)
			}
			assert.Equal(t, []byte(`"after"`), got[len(got)-1])
		})
	}
}

// failNth fails only the nth (1-based) op on a file that matches, and
// counts in hits how many faults it injected, so a test can tell that the
// operation it aims at did run.
func failNth(op string, match func(string) bool, err error, nth int, hits *int) func(string, string) error {
	seen := 0
	return func(o, name string) error {
		if o != op || !match(name) {
			return nil
		}
		seen++
		if seen != nth {
			return nil
		}
		*hits++
		return err
	}
}

func named(base string) func(string) bool { return func(name string) bool { return name == base } }

// A fault at any file operation of Open fails it with an error that says
// so, and leaves the store as it was: opening it again finds every record.
func TestFaultsOnOpen(t *testing.T) {
	tests := []struct {
		name  string
		fresh bool // the store's directory (dir/a/b) does not exist yet
		op    string
		match func(string) bool
		nth   int
	}{
		{"stat of the directory", false, "stat", named("store"), 1},
		{"lstat of the store path", false, "lstat", isActive, 1},
		{"lstat of the lock path", false, "lstat", named("p.jsonl.lock"), 1},
		{"lock", false, "lock", anyFile, 1},
		{"readdir", false, "readdir", anyFile, 1},
		// The second lstat is the take-over's chmod check, only a warning.
		{"lstat of the active file in recovery", false, "lstat", isActive, 3},
		{"open of a segment", false, "open", isSeg, 1},
		{"open of the active file", false, "open", isActive, 1},
		{"stat of a missing directory", true, "stat", named("b"), 1},
		{"mkdir of a missing parent", true, "mkdir", named("a"), 1},
		{"mkdir of the directory", true, "mkdir", named("b"), 1},
		{"chmod of the directory", true, "chmod", named("b"), 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "store")
			want := [][]byte{}
			if tt.fresh {
				dir = filepath.Join(dir, "a", "b")
			} else {
				// Records in a sealed segment and in the active file.
				s := openTestStore(t, filepath.Join(dir, "p.jsonl"), Config{})
				appendAll(t, s, numbered(3)...)
				failAll(t, s)
				appendAll(t, s, []byte(`"active"`))
				require.NoError(t, s.Close())
				want = append(numbered(3), []byte(`"active"`))
			}
			path := filepath.Join(dir, "p.jsonl")
			hits := 0
			ffs := &faultFS{fail: failNth(tt.op, tt.match, syscall.EIO, tt.nth, &hits)}
			err := fsxtest.NoHang(t, nil, func() error {
				s, err := Open(path, Config{fs: ffs})
				if err == nil {
					_ = s.Close()
				}
				return err
			})
			require.Equal(t, 1, hits, "the fault was injected")
			require.ErrorIs(t, err, syscall.EIO)
			assert.True(t, strings.HasPrefix(err.Error(), "syncbreaker: "), err.Error())

			s := openTestStore(t, path, Config{})
			assert.Equal(t, want, payloadsOf(drainAll(t, s)))
		})
	}
}

// After a replay that removed everything it read, the store looks up the
// first record of the oldest segment left (sealed while the replay ran) for
// Stats. A fault there costs only that figure: the replay succeeds and
// keeps every record.
func TestFaultsOnReplayHeadLookup(t *testing.T) {
	tests := []struct {
		name string
		op   string
	}{
		{"no fault", ""},
		{"readdir", "readdir"},
		{"open of the segment", "open"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ffs := &faultFS{}
			path := filepath.Join(t.TempDir(), "p.jsonl")
			// SegmentBytes 1: every append is sealed at once, so the one
			// made during the replay is a segment the replay did not list.
			s := openTestStore(t, path, Config{fs: ffs, SegmentBytes: 1})
			appendAll(t, s, numbered(3)...)
			hits := 0
			switch tt.op {
			case "readdir":
				ffs.set(failNth("readdir", anyFile, syscall.EIO, 2, &hits)) // the replay's own listing is the 1st
			case "open":
				ffs.set(failNth("open", isSeg, syscall.EIO, 4, &hits)) // after the 3 drained segments
			}
			appended := false
			res, err := noHangReplay(t, s, nil, func(context.Context, Record) error {
				if !appended {
					appended = true
					appendAll(t, s, []byte(`"during"`))
				}
				return nil
			})
			require.NoError(t, err)
			ffs.set(nil)
			if tt.op != "" {
				require.Equal(t, 1, hits, "the fault was injected")
			}
			assert.Equal(t, 3, res.Republished)
			st := s.Stats()
			assert.EqualValues(t, 1, st.PendingRecords)
			if tt.op == "" {
				got := failAll(t, s)
				require.Len(t, got, 1)
				assert.Equal(t, got[0].EnqueuedAt, st.OldestEnqueuedAt, "the head is the record appended during the replay")
			}
			assert.Equal(t, [][]byte{[]byte(`"during"`)}, payloadsOf(drainAll(t, s)))
		})
	}
}

// noHangReplay is s.Replay under noHang.
func noHangReplay(t *testing.T, s *Store, release func(), fn func(context.Context, Record) error) (ReplayResult, error) {
	t.Helper()
	var res ReplayResult
	err := fsxtest.NoHang(t, release, func() error {
		var err error
		res, err = s.Replay(context.Background(), fn)
		return err
	})
	return res, err
}
