package jsonl

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/syncbreaker/syncbreaker/internal/fsx"
)

// faultFS injects errors into the real filesystem. fail is asked before
// each operation (op is "write", "sync", "rename", "remove", "syncdir",
// "truncate", "open"); a non-nil error fails it. A failing write first
// writes half its bytes, like a disk that fills up mid-write.
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
			want := append(numbered(3), []byte(`"after"`))
			if strings.Contains(tt.name, "fsync") {
				// The write reached the file; only its fsync failed, so
				// it may be delivered (at-least-once), never half.
				want = append(numbered(3), []byte(`"doomed"`), []byte(`"after"`))
			}
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
