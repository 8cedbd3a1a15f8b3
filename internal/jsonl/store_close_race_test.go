package jsonl

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"
)

// Append returns nil exactly when its record is stored: appenders racing
// Close under SyncAlways, whose records Close's own final fsync covers,
// succeed; when that fsync fails, the records it covered are cut back and
// their Appends fail. Either way, the payloads whose Append returned nil
// are exactly those pending after reopening.
func TestAppendRacingCloseReturnsNilExactlyWhenStored(t *testing.T) {
	for _, syncFails := range []bool{false, true} {
		t.Run(fmt.Sprintf("close fsync fails %v", syncFails), func(t *testing.T) {
			for trial := range 40 {
				path := storePath(t)
				ffs := &faultFS{}
				s, err := Open(path, Config{fs: ffs})
				require.NoError(t, err)
				if syncFails {
					ffs.set(failOn("sync", isStoreFile(path), syscall.EIO, -1))
				}
				// Each appender appends until the store refuses; Close comes
				// once they are under way.
				var wg sync.WaitGroup
				results := make([][]bool, 8)
				started := make(chan struct{}, len(results))
				for i := range results {
					wg.Go(func() {
						for n := 0; ; n++ {
							err := s.Append(context.Background(), fmt.Appendf(nil, `{"trial":%d,"i":%d,"n":%d}`, trial, i, n))
							results[i] = append(results[i], err == nil)
							if n == 0 {
								started <- struct{}{}
							}
							if errors.Is(err, ErrClosed) || n > 1000 {
								return
							}
						}
					})
				}
				for range results {
					<-started
				}
				closeErr := s.Close()
				wg.Wait()
				ffs.set(nil)

				s = openTestStore(t, path, Config{})
				stored := map[string]bool{}
				for _, r := range drainAll(t, s) {
					stored[string(r.Payload)] = true
				}
				for i, res := range results {
					for n, nilErr := range res {
						p := fmt.Sprintf(`{"trial":%d,"i":%d,"n":%d}`, trial, i, n)
						require.Equal(t, nilErr, stored[p], "trial %d: Append of %s returned nil %v, stored %v (Close: %v)",
							trial, p, nilErr, stored[p], closeErr)
					}
				}
				require.NoError(t, s.Close())
			}
		})
	}
}

// isStoreFile matches the active file of the store at path.
func isStoreFile(path string) func(string) bool {
	return named(filepath.Base(path))
}
