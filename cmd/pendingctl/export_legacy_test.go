package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/syncbreaker/syncbreaker"
)

// originalReader reads path as the first user's release from before
// syncbreaker did: bufio.Scanner, one line at a time, and posts every line
// (here: returns them). Its error is the scanner's, which failed every
// retry after a line over 64 KiB.
func originalReader(t *testing.T, path string) ([]string, error) {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	var posted []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if line := sc.Text(); line != "" {
			posted = append(posted, line)
		}
	}
	return posted, sc.Err()
}

// After export-legacy, a reader written like the original one posts every
// pending JSON payload, once, in order, and nothing else: no envelope, no
// record settled late, no line it cannot read. What it would post wrongly
// stays in the store, and an upgrade delivers it and the rest again.
func TestExportLegacyForTheOriginalReader(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "sync-pending.jsonl")
	huge := `{"cmd":"` + strings.Repeat("x", 70<<10) + `"}`
	payloads := []string{
		`{"cmd":"ls","note":"` + secret + `"}`,
		"{\n  \"cmd\": \"pretty\"\n}",
		"plain " + secret + "\nline", // not JSON
		huge,                         // too long for bufio.Scanner
		`{"cmd":"settled late"}`,
		`"just a string"`,
		`{"cmd":"appended after"}`,
	}
	s, err := syncbreaker.OpenJSONLStore(path, syncbreaker.StoreConfig{SegmentBytes: 200})
	require.NoError(t, err)
	for _, p := range payloads[:6] {
		require.NoError(t, s.Append(t.Context(), []byte(p)))
	}
	// A round refuses every record (they move into a segment), then one
	// of them is settled late (delivered: not to be posted again), and
	// one more is appended.
	var ids []string
	_, err = s.Replay(t.Context(), func(_ context.Context, r syncbreaker.Record) error {
		ids = append(ids, r.ID)
		return errors.New("server down")
	})
	require.NoError(t, err)
	s.SettleLate(ids[4])
	require.NoError(t, s.Append(t.Context(), []byte(payloads[6])))
	closeStore(t, s)

	held, err := syncbreaker.OpenJSONLStore(path, syncbreaker.StoreConfig{})
	require.NoError(t, err)
	r := pendingctl(t, "export-legacy", path)
	assert.Equal(t, exitLocked, r.code, "refuses while a daemon holds the store: %s", r.stderr)
	closeStore(t, held)

	r = pendingctl(t, "export-legacy", path)
	assert.Equal(t, exitProblems, r.code, r.stdout+r.stderr)
	assert.Contains(t, r.stdout, "wrote 4 payloads to "+path+", one a line\n")
	assert.Contains(t, r.stdout, "1 not JSON, 1 too long (64 KiB or more), 0 damaged\n")
	assert.NotContains(t, r.stdout+r.stderr, secret)

	posted, err := originalReader(t, path)
	require.NoError(t, err, "the original reader reads every line")
	assert.Equal(t, []string{payloads[0], `{"cmd":"pretty"}`, payloads[5], payloads[6]}, posted)
	for _, line := range posted {
		var v map[string]json.RawMessage
		if json.Unmarshal([]byte(line), &v) == nil {
			assert.NotContains(t, v, "_v", "an envelope: %s", line)
		}
	}

	// Upgrading again delivers everything still owed, once.
	s, err = syncbreaker.OpenJSONLStore(path, syncbreaker.StoreConfig{})
	require.NoError(t, err)
	var got []string
	_, err = s.Replay(t.Context(), func(_ context.Context, r syncbreaker.Record) error {
		got = append(got, string(r.Payload))
		return nil
	})
	require.NoError(t, err)
	closeStore(t, s)
	assert.ElementsMatch(t, []string{payloads[0], `{"cmd":"pretty"}`, payloads[2], huge, payloads[5], payloads[6]}, got)
}

// A store with only JSON payloads exports whole: exit 0, no segment left.
func TestExportLegacyEverything(t *testing.T) {
	t.Parallel()
	path := newStore(t, t.TempDir(), `{"cmd":"a"}`, `{"cmd":"b"}`)
	r := pendingctl(t, "export-legacy", path)
	assert.Equal(t, exitOK, r.code, r.stdout+r.stderr)
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, "{\"cmd\":\"a\"}\n{\"cmd\":\"b\"}\n", string(data))
	matches, err := filepath.Glob(path + ".seg.*")
	require.NoError(t, err)
	assert.Empty(t, matches)
	assert.False(t, bytes.Contains(data, []byte(`"_v"`)))
}
