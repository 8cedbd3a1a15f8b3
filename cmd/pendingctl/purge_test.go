package main

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/syncbreaker/syncbreaker"
)

// purge removes every record, pending, dead-lettered and quarantined, and
// asks for --yes first.
func TestPurge(t *testing.T) {
	t.Parallel()
	path := buildMixedStore(t)

	r := pendingctl(t, "purge", path)
	assert.Equal(t, exitUsage, r.code)
	assert.Contains(t, r.stderr, "--yes")

	r = pendingctl(t, "purge", "--yes", path)
	require.Equal(t, exitOK, r.code, r.stderr)
	assert.Contains(t, r.stdout, "purged 3 pending records")
	assert.NotContains(t, r.stdout+r.stderr, secret)

	r = pendingctl(t, "cat", path)
	require.Equal(t, exitOK, r.code, r.stderr)
	assert.Empty(t, r.stdout)
	r = pendingctl(t, "cat", "--dead", path)
	assert.Empty(t, r.stdout)
}

// purge refuses while the daemon holds the store, and changes nothing.
func TestPurgeRefusesWhileHeld(t *testing.T) {
	t.Parallel()
	path := buildMixedStore(t)
	held, err := syncbreaker.OpenJSONLStore(path, syncbreaker.StoreConfig{})
	require.NoError(t, err)
	defer closeStore(t, held)
	before := snapshot(t, filepath.Dir(path))
	r := pendingctl(t, "purge", "--yes", path)
	assert.Equal(t, exitLocked, r.code)
	assert.Equal(t, "pendingctl purge: the store is held by another process — is the daemon running? stop it first\n", r.stderr)
	assert.Equal(t, before, snapshot(t, filepath.Dir(path)))
}
