package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/syncbreaker/syncbreaker/internal/jsonl"
)

// catPayloads covers what a payload may be; inline says whether cat must
// print it as is (else as {"payload_base64":...}).
var catPayloads = []struct {
	name    string
	payload []byte
	inline  bool
}{
	{"object with spaces and HTML characters", []byte(`{"a": 1, "b": "<&>", "c": [1, 2]}`), true},
	{"string", []byte(`"just a string"`), true},
	{"number", []byte(`42`), true},
	{"object looking like the fallback", []byte(`{"payload_base64":"eA=="}`), true},
	{"line separator inside a string", []byte("{\"u\":\"a\u2028b\"}"), true},
	{"pretty-printed JSON", []byte("{\n  \"pretty\": true\n}"), false},
	{"JSON with a CR", []byte("{\"a\":1}\r"), false},
	{"leading space", []byte(` {"lead":1}`), false},
	{"invalid UTF-8 in a string", []byte("{\"bad\":\"\xff\"}"), false},
	{"plain text", []byte("cd ~/src && ls " + secret), false},
	{"empty", []byte{}, false},
	{"every byte", func() []byte {
		b := make([]byte, 256)
		for i := range b {
			b[i] = byte(i)
		}
		return b
	}(), false},
}

func catStore(t *testing.T) string {
	t.Helper()
	var payloads []string
	for _, p := range catPayloads {
		payloads = append(payloads, string(p.payload))
	}
	return newStore(t, t.TempDir(), payloads...)
}

// outputLines splits cat's stdout into lines, checking it ends with a
// newline.
func outputLines(t *testing.T, out string) []string {
	t.Helper()
	require.True(t, strings.HasSuffix(out, "\n"), "output ends with a newline")
	return strings.Split(strings.TrimSuffix(out, "\n"), "\n")
}

func TestCatPrintsExactPayloadsAsJSONLines(t *testing.T) {
	t.Parallel()
	path := catStore(t)
	r := pendingctl(t, "cat", path)
	require.Equal(t, exitOK, r.code, r.stderr)
	assert.Empty(t, r.stderr)
	lines := outputLines(t, r.stdout)
	require.Len(t, lines, len(catPayloads))
	for i, tc := range catPayloads {
		line := []byte(lines[i])
		require.True(t, json.Valid(line), "%s: line %d is JSON", tc.name, i+1)
		if tc.inline {
			assert.Equal(t, tc.payload, line, tc.name)
			continue
		}
		var fallback map[string]string
		require.NoError(t, json.Unmarshal(line, &fallback), tc.name)
		require.Len(t, fallback, 1, tc.name)
		got, err := base64.StdEncoding.DecodeString(fallback["payload_base64"])
		require.NoError(t, err)
		assert.Equal(t, tc.payload, got, tc.name)
	}
}

func TestCatWithMeta(t *testing.T) {
	t.Parallel()
	path := catStore(t)
	var want []jsonl.Record
	require.NoError(t, jsonl.ScanFile(path, jsonl.ScanConfig{}, func(e jsonl.ScanEntry) error {
		e.Record.Payload = bytes.Clone(e.Record.Payload)
		want = append(want, e.Record)
		return nil
	}))
	require.Len(t, want, len(catPayloads))

	r := pendingctl(t, "cat", "--with-meta", path)
	require.Equal(t, exitOK, r.code, r.stderr)
	lines := outputLines(t, r.stdout)
	require.Len(t, lines, len(catPayloads))
	for i, tc := range catPayloads {
		var got struct {
			ID            string          `json:"id"`
			EnqueuedAt    time.Time       `json:"enqueued_at"`
			Attempts      *int            `json:"attempts"`
			Payload       json.RawMessage `json:"payload"` // kept byte for byte
			PayloadBase64 *string         `json:"payload_base64"`
		}
		dec := json.NewDecoder(strings.NewReader(lines[i]))
		dec.DisallowUnknownFields()
		require.NoError(t, dec.Decode(&got), tc.name)
		assert.Equal(t, want[i].ID, got.ID, tc.name)
		assert.True(t, want[i].EnqueuedAt.Equal(got.EnqueuedAt), tc.name)
		require.NotNil(t, got.Attempts, tc.name)
		assert.Equal(t, 0, *got.Attempts)
		if tc.inline {
			assert.Equal(t, tc.payload, []byte(got.Payload), tc.name)
			assert.Nil(t, got.PayloadBase64, tc.name)
			continue
		}
		assert.Nil(t, got.Payload, tc.name)
		require.NotNil(t, got.PayloadBase64, tc.name)
		b, err := base64.StdEncoding.DecodeString(*got.PayloadBase64)
		require.NoError(t, err)
		assert.Equal(t, tc.payload, b, tc.name)
	}
}

// TestCatPipesIntoJQ is the documented use: pendingctl cat FILE | jq.
func TestCatPipesIntoJQ(t *testing.T) {
	t.Parallel()
	jq, err := exec.LookPath("jq")
	if err != nil {
		t.Skip("jq not installed")
	}
	path := catStore(t)
	for _, args := range [][]string{{"cat", path}, {"cat", "--with-meta", path}} {
		r := pendingctl(t, args...)
		require.Equal(t, exitOK, r.code, r.stderr)
		cmd := exec.CommandContext(t.Context(), jq, "-c", ".")
		cmd.Stdin = strings.NewReader(r.stdout)
		out, err := cmd.Output()
		require.NoError(t, err, "jq parses every line of %v", args)
		assert.Len(t, outputLines(t, string(out)), len(catPayloads))
	}
}

func TestCatDeadAndQuarantine(t *testing.T) {
	t.Parallel()
	path := buildMixedStore(t)

	r := pendingctl(t, "cat", "--dead", path)
	require.Equal(t, exitOK, r.code, r.stderr)
	assert.Equal(t, catOutput("dead 1 "+secret, `{"dead":2}`, `{"dead":3}`), r.stdout)

	r = pendingctl(t, "cat", "--dead", "--with-meta", path)
	require.Equal(t, exitOK, r.code, r.stderr)
	assert.Equal(t, 3, strings.Count(r.stdout, `"attempts":2,`))

	// The quarantine holds raw damaged lines; a line that still decodes
	// (one quarantined by a reader with a lower size limit, say) is shown.
	good := fileLines(t, path+".dead")[1]
	q, err := os.OpenFile(path+".quarantine", os.O_APPEND|os.O_WRONLY, 0)
	require.NoError(t, err)
	garbage := "more garbage " + secret + "\n"
	_, err = q.Write(append([]byte(garbage), good...))
	require.NoError(t, err)
	require.NoError(t, q.Close())

	r = pendingctl(t, "cat", "--quarantine", path)
	assert.Equal(t, exitProblems, r.code)
	assert.Equal(t, catOutput(`{"dead":2}`), r.stdout)
	qp := path + ".quarantine"
	assert.Contains(t, r.stderr, qp+":1: offset 0, 8 bytes: bad json (not shown)\n")
	assert.Contains(t, r.stderr, fmt.Sprintf("%s:2: offset 8, %d bytes: bad json (not shown)\n", qp, len(garbage)))
	assert.Contains(t, r.stderr, "not shown: 2 lines that could not be decoded")
	assert.NotContains(t, r.stderr, secret)

	// Pending records, in replay order: the sealed segment, then the
	// active file.
	r = pendingctl(t, "cat", path)
	require.Equal(t, exitOK, r.code, r.stderr)
	assert.Equal(t, catOutput(`{"p":4}`, "p5 "+secret, `{"p":6}`), r.stdout)
}
