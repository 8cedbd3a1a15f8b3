package jsonl

import (
	"context"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/syncbreaker/syncbreaker/internal/fsx"
)

// Appenders that write while an fsync runs must all be covered by the
// next one (group commit), and their records must be written while the
// first fsync is still running, not after it. When that first fsync fails,
// every record written before it ended fails with it (see
// TestFailedFsyncFailsEveryWaiter): no retry turns them into successes.
func TestGroupCommitJoinsWritersArrivingDuringFsync(t *testing.T) {
	tests := []struct {
		name    string
		failing bool // the first fsync fails: every appender gets its error
	}{
		{"fsync succeeds", false},
		{"first fsync fails", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			const late = 5
			var syncs atomic.Int32
			release := make(chan struct{})
			ffs := &syncHookFS{onSync: func() error {
				if syncs.Add(1) == 1 {
					<-release
					if tt.failing {
						return syscall.EIO
					}
				}
				return nil
			}}
			s := openTestStore(t, storePath(t), Config{fs: ffs})
			ctx := context.Background()

			first := make(chan error, 1)
			go func() { first <- s.Append(ctx, []byte(`{"n":0}`)) }()
			require.Eventually(t, func() bool { return syncs.Load() == 1 }, 10*time.Second, time.Millisecond)

			var wg sync.WaitGroup
			errs := make([]error, late)
			for i := range late {
				wg.Go(func() { errs[i] = s.Append(ctx, []byte(`{"n":1}`)) })
			}
			require.Eventually(t, func() bool { return s.Stats().Appended == late+1 }, 10*time.Second, time.Millisecond,
				"late appenders must write while the first fsync runs")
			close(release)
			wg.Wait()
			err := <-first
			if tt.failing {
				assert.ErrorIs(t, err, syscall.EIO)
				for _, err := range errs {
					assert.ErrorIs(t, err, syscall.EIO, "written before the failed fsync ended: cut back with it")
				}
				assert.Equal(t, int32(1), syncs.Load(), "a failed fsync is not retried")
				return
			}
			assert.NoError(t, err)
			for _, err := range errs {
				assert.NoError(t, err)
			}
			assert.Equal(t, int32(2), syncs.Load(), "one fsync for the first appender, one for all the late ones")
		})
	}
}

// syncHookFS is the real filesystem with onSync called before every fsync
// of a file. Unlike faultFS it holds no lock while onSync blocks, so
// writes go on meanwhile.
type syncHookFS struct {
	fsx.OS
	onSync func() error
}

func (f *syncHookFS) OpenFile(name string, flag int, perm os.FileMode) (fsx.File, error) {
	file, err := f.OS.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return syncHookFile{file, f.onSync}, nil
}

type syncHookFile struct {
	fsx.File
	onSync func() error
}

func (f syncHookFile) Sync() error {
	if err := f.onSync(); err != nil {
		return err
	}
	return f.File.Sync()
}
