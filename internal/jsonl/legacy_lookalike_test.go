package jsonl

import (
	"os"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A file the original implementation wrote migrates whole, look-alikes
// included: a line is a legacy payload when it is valid JSON without the
// envelope's shape (no id, no trailing checksum member), whatever its
// "_v". A future version's envelope is set aside, never delivered; a
// byte-order mark is stripped at the start of the file only.
func TestLegacyLookAlikesMigrate(t *testing.T) {
	path := storePath(t)
	future := `{"_v":2,"id":"0190a0a0-0000-7000-8000-000000000000","t":"2025-01-01T00:00:00Z","a":0,"q":1,"c":"00000000"}`
	body := "\xEF\xBB\xBF" + `{"cmd":"first"}` + "\n" +
		`{"_v":1,"cmd":"ls"}` + "\n" +
		`{"_v":2}` + "\n" +
		future + "\n" +
		"\xEF\xBB\xBF" + `{"cmd":"bom inside"}` + "\n"
	require.NoError(t, os.WriteFile(path, []byte(body), 0o600))

	s := openTestStore(t, path, Config{})
	rep := s.RepairReport()
	require.Len(t, rep.Files, 1)
	assert.Equal(t, 3, rep.Files[0].LegacyRewritten)
	assert.Equal(t, 2, rep.Files[0].Quarantined, "the future envelope and the mid-file mark")
	assert.Equal(t, [][]byte{[]byte(`{"cmd":"first"}`), []byte(`{"_v":1,"cmd":"ls"}`), []byte(`{"_v":2}`)},
		payloadsOf(drainAll(t, s)))
	quar, err := os.ReadFile(path + quarantineSuffix)
	require.NoError(t, err)
	assert.Contains(t, string(quar), future, "set aside byte for byte")
}
