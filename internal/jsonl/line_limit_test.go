package jsonl

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Lowering MaxPayloadBytes never makes a stored record unreadable: the
// reader's limit covers the largest line the store wrote, recorded in the
// ledger before the line is written, so a kill -9 right after keeps it
// too; a replay's rewrite with one more attempt stays readable.
func TestLoweringMaxPayloadBytesKeepsStoredRecordsReadable(t *testing.T) {
	// Not JSON: base64, a line longer than the default limit lets a
	// reader take.
	big := bytes.Repeat([]byte{0xff}, DefaultMaxPayloadBytes+1<<10)
	for _, closed := range []bool{true, false} {
		name := "after a kill"
		if closed {
			name = "after Close"
		}
		t.Run(name, func(t *testing.T) {
			path := storePath(t)
			s := openTestStore(t, path, Config{MaxPayloadBytes: 32 << 20})
			appendAll(t, s, big, []byte(`"small"`))
			if closed {
				require.NoError(t, s.Close())
			} else {
				// The files as a kill -9 leaves them, opened elsewhere.
				moved := filepath.Join(t.TempDir(), filepath.Base(path))
				for _, suffix := range []string{"", ledgerSuffix} {
					b, err := os.ReadFile(path + suffix)
					if os.IsNotExist(err) && suffix != "" {
						continue
					}
					require.NoError(t, err)
					require.NoError(t, os.WriteFile(moved+suffix, b, 0o600))
				}
				path = moved
			}
			s = openTestStore(t, path, Config{})
			assert.Empty(t, s.RepairReport().Files, "nothing quarantined")
			assert.Equal(t, [][]byte{big, []byte(`"small"`)}, payloadsOf(failAll(t, s)))
			require.NoError(t, s.Close())
			s = openTestStore(t, path, Config{MaxPayloadBytes: 1 << 10})
			assert.Equal(t, [][]byte{big, []byte(`"small"`)}, payloadsOf(drainAll(t, s)), "rewritten with an attempt more, still read")
			assert.Zero(t, s.Stats().Quarantined)
		})
	}
}
