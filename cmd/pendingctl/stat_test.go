package main

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/syncbreaker/syncbreaker"
)

// buildMixedStore makes a store with dead-lettered records, pending
// records with 0 and 1 failed attempts, and one quarantined line.
func buildMixedStore(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	path := newStore(t, dir, "dead 1 "+secret, `{"dead":2}`, `{"dead":3}`)
	failReplays(t, path, 2, 2) // two failures at MaxAttempts 2: all three dead

	appendPayloads(t, path, `{"p":4}`, "p5 "+secret)
	failReplays(t, path, 0, 1) // one failure each, no limit
	appendPayloads(t, path, `{"p":6}`)

	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	require.NoError(t, err)
	_, err = f.WriteString("garbage\n")
	require.NoError(t, errors.Join(err, f.Close()))
	appendPayloads(t, path) // opening moves the garbage line to quarantine
	return path
}

func appendPayloads(t *testing.T, path string, payloads ...string) {
	t.Helper()
	s, err := syncbreaker.OpenJSONLStore(path, syncbreaker.StoreConfig{})
	require.NoError(t, err)
	for _, p := range payloads {
		require.NoError(t, s.Append(t.Context(), []byte(p)))
	}
	closeStore(t, s)
}

func TestStatJSON(t *testing.T) {
	t.Parallel()
	path := buildMixedStore(t)
	dir := filepath.Dir(path)
	// A daemon holds the store: stat takes no lock, so it still works.
	held, err := syncbreaker.OpenJSONLStore(path, syncbreaker.StoreConfig{})
	require.NoError(t, err)
	defer closeStore(t, held)
	before := snapshot(t, dir)

	r := pendingctl(t, "stat", "--json", path)
	require.Equal(t, exitOK, r.code, r.stderr)
	assert.NotContains(t, r.stdout+r.stderr, secret)
	var got statReport
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &got), r.stdout)

	assert.Equal(t, path, got.Path)
	assert.Equal(t, path, got.Files.Active)
	assert.Equal(t, path+".dead", got.Files.Dead)
	assert.Equal(t, path+".quarantine", got.Files.Quarantine)

	assert.EqualValues(t, 3, got.Pending.Records)
	assert.Equal(t, []attemptCount{{Attempts: 0, Records: 1}, {Attempts: 1, Records: 2}}, got.Pending.Attempts)
	assert.Zero(t, got.Pending.DamagedLines)
	var pendingBytes int64
	for _, f := range append(got.Files.Segments, got.Files.Active) {
		fi, err := os.Stat(f)
		require.NoError(t, err)
		pendingBytes += fi.Size()
	}
	assert.Equal(t, pendingBytes, got.Pending.Bytes)
	require.NotNil(t, got.Pending.Oldest)
	require.NotNil(t, got.Pending.Newest)
	assert.True(t, got.Pending.Oldest.Before(*got.Pending.Newest), "oldest %v, newest %v", got.Pending.Oldest, got.Pending.Newest)

	assert.EqualValues(t, 3, got.Dead.Records)
	assert.Equal(t, []attemptCount{{Attempts: 2, Records: 3}}, got.Dead.Attempts)
	assert.EqualValues(t, 1, got.Quarantine.Lines)
	assert.EqualValues(t, len("garbage\n"), got.Quarantine.Bytes)

	assert.Equal(t, before, snapshot(t, dir), "stat changes no file")
}

func TestStatText(t *testing.T) {
	t.Parallel()
	path := buildMixedStore(t)
	r := pendingctl(t, "stat", path)
	require.Equal(t, exitOK, r.code, r.stderr)
	for _, want := range []string{
		"store        " + path + "\n",
		"files        active, 1 sealed segment, dead-letter, quarantine\n",
		"pending      3 records, ",
		"  attempts   0:1 1:2  ",
		"dead-letter  3 records, ",
		"  attempts   2:3  ",
		"(pendingctl requeue-dead moves them back to pending)",
		"quarantine   1 line, 8 bytes\n",
	} {
		assert.Contains(t, r.stdout, want)
	}
	assert.NotContains(t, r.stdout, "damaged")
	assert.NotContains(t, r.stdout+r.stderr, secret)
}

func TestSizeString(t *testing.T) {
	t.Parallel()
	tests := []struct {
		n    int64
		want string
	}{
		{0, "0 bytes"},
		{1, "1 byte"},
		{1023, "1023 bytes"},
		{1536, "1.5 KiB (1536 bytes)"},
		{5 << 20, "5.0 MiB (5242880 bytes)"},
		{3 << 30, "3.0 GiB (3221225472 bytes)"},
	}
	for _, tc := range tests {
		assert.Equal(t, tc.want, sizeString(tc.n))
	}
}
