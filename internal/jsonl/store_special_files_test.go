package jsonl

import (
	"os"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/syncbreaker/syncbreaker/internal/fsx"
)

// A directory given as the store path is refused with a message that says
// so, not read as an empty or broken store.
func TestStoreRefusesDirectoryAtStorePath(t *testing.T) {
	path := storePath(t)
	require.NoError(t, os.Mkdir(path, 0o700))
	_, err := Open(path, Config{})
	require.ErrorIs(t, err, fsx.ErrNotRegular)
	assert.Contains(t, err.Error(), "sync-pending.jsonl is a directory, not a regular file")

	err = ScanFile(path, ScanConfig{}, func(ScanEntry) error { return nil })
	require.ErrorIs(t, err, fsx.ErrNotRegular)
	assert.Equal(t, "syncbreaker: scan: sync-pending.jsonl is a directory, not a regular file", err.Error())
	fi, err := os.Stat(path)
	require.NoError(t, err)
	assert.True(t, fi.IsDir(), "left as it was")
}
