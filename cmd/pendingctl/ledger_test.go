package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/syncbreaker/syncbreaker"
	"github.com/syncbreaker/syncbreaker/internal/jsonl"
)

// sealedStore makes a store whose five records sit in one sealed segment,
// as a drain that crashed would leave it, and returns its path and that
// segment.
func sealedStore(t *testing.T) (path, segment string) {
	t.Helper()
	path = newStore(t, t.TempDir(), `"a"`, `"b"`, `"c"`, `"d"`, `"e"`)
	s, err := syncbreaker.OpenJSONLStore(path, syncbreaker.StoreConfig{})
	require.NoError(t, err)
	_, err = s.Replay(t.Context(), func(context.Context, syncbreaker.Record) error {
		return syncbreaker.ErrNotAttempted // seals the active file, keeps every record
	})
	require.NoError(t, err)
	require.NoError(t, s.Close())
	l, err := jsonl.Files(path)
	require.NoError(t, err)
	require.Len(t, l.Segments, 1)
	return path, l.Segments[0]
}

// writeLedger marks the first settled lines of segment as delivered, as a
// drain's checkpoint does (see internal/jsonl/ledger.go).
func writeLedger(t *testing.T, path, segment string, settled int) {
	t.Helper()
	var off int64
	var first string
	n := 0
	require.NoError(t, jsonl.ScanFile(segment, jsonl.ScanConfig{}, func(e jsonl.ScanEntry) error {
		if n == 0 {
			first = e.Record.ID
		}
		if n < settled {
			off = e.Offset + e.Length
		}
		n++
		return nil
	}))
	fi, err := os.Stat(segment)
	require.NoError(t, err)
	data := fmt.Sprintf(`{"v":1,"segments":{%q:{"size":%d,"first":%q,"off":%d,"lines":%d}}}`,
		filepath.Base(segment), fi.Size(), first, off, settled)
	require.NoError(t, os.WriteFile(path+".ledger", []byte(data), 0o600))
}

// Records a crashed drain delivered, which the store's ledger skips, are
// not listed as pending by stat, cat or verify.
func TestLedgerDeliveredRecordsAreNotPending(t *testing.T) {
	path, segment := sealedStore(t)
	writeLedger(t, path, segment, 3)
	checkPending(t, path, "\"d\"\n\"e\"\n", 2)

	r := pendingctl(t, "verify", path)
	assert.Equal(t, exitOK, r.code, r.stdout+r.stderr)

	// The store agrees: opening it counts the same.
	s, err := syncbreaker.OpenJSONLStore(path, syncbreaker.StoreConfig{})
	require.NoError(t, err)
	assert.EqualValues(t, 2, s.Stats().PendingRecords)
	require.NoError(t, s.Close())
}

// A ledger entry that does not match its segment (another size: the file
// was rewritten) is ignored: every record is pending again.
func TestLedgerMismatchMeansRedelivery(t *testing.T) {
	path, segment := sealedStore(t)
	writeLedger(t, path, segment, 3)
	data, err := os.ReadFile(path + ".ledger")
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(path+".ledger", []byte(strings.Replace(string(data), `"size":`, `"size":1`, 1)), 0o600))

	r := pendingctl(t, "cat", path)
	require.Equal(t, exitOK, r.code, r.stderr)
	assert.Equal(t, 5, strings.Count(r.stdout, "\n"))
}

// A record the daemon handled after its round gave up on it (a late
// settle: a tombstone in the ledger) is not listed as pending either.
func TestLedgerLateSettledRecordsAreNotPending(t *testing.T) {
	path, segment := sealedStore(t)
	var second string
	n := 0
	require.NoError(t, jsonl.ScanFile(segment, jsonl.ScanConfig{}, func(e jsonl.ScanEntry) error {
		if n == 1 {
			second = e.Record.ID
		}
		n++
		return nil
	}))
	data := fmt.Sprintf(`{"v":1,"segments":{},"settled":[%q]}`, second)
	require.NoError(t, os.WriteFile(path+".ledger", []byte(data), 0o600))
	checkPending(t, path, "\"a\"\n\"c\"\n\"d\"\n\"e\"\n", 4)
}

// checkPending checks what stat counts and cat prints as pending.
func checkPending(t *testing.T, path, cat string, records int) {
	t.Helper()
	r := pendingctl(t, "stat", "--json", path)
	require.Equal(t, exitOK, r.code, r.stderr)
	var st statReport
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &st), r.stdout)
	assert.EqualValues(t, records, st.Pending.Records)

	r = pendingctl(t, "cat", path)
	require.Equal(t, exitOK, r.code, r.stderr)
	assert.Equal(t, cat, r.stdout)
}
