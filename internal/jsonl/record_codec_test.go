package jsonl

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestRecordCodecRoundTrip(t *testing.T) {
	at := time.Date(2025, 3, 4, 5, 6, 7, 890123456, time.UTC)
	tests := []struct {
		name    string
		payload []byte
		inline  bool
	}{
		{"compact object", []byte(`{"cmd":"ls -la","exit":0}`), true},
		{"object with inner spaces", []byte(`{"a": [1, 2 ,3]}`), true},
		{"string", []byte(`"hello"`), true},
		{"null", []byte(`null`), true},
		{"number", []byte(`12.5e3`), true},
		{"escaped unicode kept as written", []byte(`"\u00e9\/"`), true},
		{"leading space", []byte(` {"a":1}`), false},
		{"trailing newline", []byte("{\"a\":1}\n"), false},
		{"embedded newline", []byte("{\"a\":\n1}"), false},
		{"embedded CR", []byte("{\"a\":\r1}"), false},
		{"not json", []byte("echo secret"), false},
		{"binary", []byte{0, 1, 2, 0xff, '\n', 0}, false},
		{"invalid utf8 in string", []byte("\"\xff\""), false},
		{"empty", []byte{}, false},
		{"multi mib", bytes.Repeat([]byte("x"), 3<<20), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := Record{ID: "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b", Payload: tt.payload, EnqueuedAt: at, Attempts: 3}
			line := appendRecord(nil, rec)
			require.Equal(t, byte('\n'), line[len(line)-1])
			require.Equal(t, 1, bytes.Count(line, []byte("\n")), "one line")
			assert.Equal(t, tt.inline, bytes.Contains(line, []byte(`,"p":`)), "inline")
			var generic map[string]any
			require.NoError(t, json.Unmarshal(line, &generic), "every line is JSON for jq")

			got, legacy, problem := decodeLine(line[:len(line)-1])
			require.Equal(t, ProblemNone, problem)
			assert.False(t, legacy)
			assert.Equal(t, rec.ID, got.ID)
			assert.True(t, rec.EnqueuedAt.Equal(got.EnqueuedAt))
			assert.Equal(t, rec.Attempts, got.Attempts)
			assert.True(t, bytes.Equal(rec.Payload, got.Payload), "payload byte-exact")
		})
	}
}

func TestDecodeLineProblems(t *testing.T) {
	good := appendRecord(nil, Record{ID: "id-1", Payload: []byte(`{"k":"v"}`), EnqueuedAt: time.Unix(1, 0)})
	good = good[:len(good)-1]
	flip := func(i int) []byte {
		b := bytes.Clone(good)
		b[i] ^= 0x01
		return b
	}
	tests := []struct {
		name   string
		line   []byte
		want   Problem
		legacy bool
	}{
		{"good", good, ProblemNone, false},
		{"flipped payload byte", flip(bytes.Index(good, []byte(`"v"`)) + 1), ProblemChecksum, false},
		{"flipped id byte", flip(bytes.Index(good, []byte(`id-1`))), ProblemChecksum, false},
		{"flipped crc digit", flip(len(good) - 3), ProblemChecksum, false},
		{"unknown version", bytes.Replace(good, []byte(`{"_v":1,`), []byte(`{"_v":2,`), 1), ProblemBadVersion, false},
		{"truncated", good[:len(good)-5], ProblemBadJSON, false},
		{"nul run", bytes.Repeat([]byte{0}, 40), ProblemBadJSON, false},
		{"nul run before record", append(bytes.Repeat([]byte{0}, 8), good...), ProblemBadJSON, false},
		{"garbage", []byte("not json at all"), ProblemBadJSON, false},
		{"legacy object", []byte(`{"data":[1,2]}`), ProblemNone, true},
		{"legacy string", []byte(`"cmd"`), ProblemNone, true},
		{"envelope without crc", []byte(`{"_v":1,"id":"x","t":"2025-01-01T00:00:00Z","a":0,"p":1}`), ProblemBadJSON, false},
		// Legacy look-alikes: valid JSON with neither an id nor a
		// trailing checksum member is a payload, whatever its "_v".
		{"legacy with _v 1", []byte(`{"_v":1,"cmd":"ls"}`), ProblemNone, true},
		{"legacy _v 2 alone", []byte(`{"_v":2}`), ProblemNone, true},
		{"legacy _v 2", []byte(`{"_v":2,"cmd":"ls"}`), ProblemNone, true},
		{"legacy with a nested id", []byte(`{"_v":1,"user":{"id":3}}`), ProblemNone, true},
		{"legacy with a nested c", []byte(`{"_v":1,"x":{"c":"00000000"}}`), ProblemNone, true},
		{"future envelope", []byte(`{"_v":2,"id":"x","t":"2025-01-01T00:00:00Z","z":0,"c":"00000000"}`), ProblemBadVersion, false},
		{"envelope with a damaged id key", bytes.Replace(good, []byte(`"id"`), []byte(`"ie"`), 1), ProblemChecksum, false},
		{"envelope with a damaged crc key", bytes.Replace(good, []byte(`,"c":"`), []byte(`,"d":"`), 1), ProblemBadJSON, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, legacy, problem := decodeLine(tt.line)
			assert.Equal(t, tt.want, problem)
			assert.Equal(t, tt.legacy, legacy)
		})
	}
}

func TestDecodeLineRejectsBadFieldsWithGoodChecksum(t *testing.T) {
	tests := map[string]string{
		"both payloads":    `{"_v":1,"id":"a","t":"2025-01-01T00:00:00Z","a":0,"p":1,"b":"AA=="`,
		"no payload":       `{"_v":1,"id":"a","t":"2025-01-01T00:00:00Z","a":0`,
		"negative attempt": `{"_v":1,"id":"a","t":"2025-01-01T00:00:00Z","a":-1,"p":1`,
		"bad id":           `{"_v":1,"id":"a b","t":"2025-01-01T00:00:00Z","a":0,"p":1`,
		"bad base64":       `{"_v":1,"id":"a","t":"2025-01-01T00:00:00Z","a":0,"b":"!!"`,
	}
	for name, body := range tests {
		t.Run(name, func(t *testing.T) {
			line := appendHex32(append([]byte(body), crcKey...), crc32c([]byte(body)))
			line = append(line, '"', '}')
			_, _, problem := decodeLine(line)
			assert.Equal(t, ProblemBadRecord, problem)
		})
	}
}

// A legacy line's record is encoded as appendRecord would, without its
// payload validated a second time: for every line the scan takes for a
// legacy payload.
func TestAppendLegacyRecordMatchesAppendRecord(t *testing.T) {
	lines := append([]string{
		" {\"a\":1}", "{\"a\":1}\t", "{\"a\":\r1}", "\"\xff\"", "[1,\n2]", `"` + strings.Repeat("é", 100) + `"`,
	}, validJSONCases...)
	at := time.Date(2024, 5, 6, 7, 8, 9, 10, time.UTC)
	for _, line := range lines {
		rec, legacy, problem := decodeLine([]byte(line))
		if !legacy {
			continue
		}
		require.Equal(t, ProblemNone, problem)
		rec.ID, rec.EnqueuedAt = legacyID(0, []byte(line)), at
		assert.Equal(t, string(appendRecord(nil, rec)), string(appendLegacyRecord(nil, rec)), "line %q", line)
	}
}

// A record's message UUID goes into the line and comes back, through the
// fast decoder and encoding/json alike, for inline and base64 payloads; a
// UUID the envelope cannot hold as is is left out, never a bad line.
func TestMessageIDRoundTrip(t *testing.T) {
	for _, payload := range [][]byte{[]byte(`{"cmd":"ls"}`), []byte("not json\n")} {
		rec := Record{ID: "0190f3a4-0000-7000-8000-000000000001", Payload: payload,
			EnqueuedAt: time.Date(2026, 12, 4, 10, 0, 0, 5, time.UTC), Attempts: 3, MessageID: "watermill-uuid_1.2"}
		line := bytes.TrimSuffix(appendRecord(nil, rec), []byte("\n"))
		got, legacy, problem := decodeLine(line)
		if problem != ProblemNone || legacy {
			t.Fatalf("%q: problem %v, legacy %v", line, problem, legacy)
		}
		if !reflect.DeepEqual(got, rec) {
			t.Errorf("decodeLine: got %+v, want %+v", got, rec)
		}
		fast, ok := decodeEnvelope(line[:len(line)-crcSuffixSize], nil, true)
		if !ok || !reflect.DeepEqual(fast, rec) {
			t.Errorf("fast decoder: got %+v (ok %v), want %+v", fast, ok, rec)
		}
		viaJSON, _, problem := decodeEnvelopeJSON(line)
		if problem != ProblemNone || !reflect.DeepEqual(viaJSON, rec) {
			t.Errorf("encoding/json: got %+v (%v), want %+v", viaJSON, problem, rec)
		}

		rec.MessageID = `a "quoted" id`
		got, _, problem = decodeLine(bytes.TrimSuffix(appendRecord(nil, rec), []byte("\n")))
		if problem != ProblemNone || got.MessageID != "" || !bytes.Equal(got.Payload, payload) {
			t.Errorf("a UUID outside the alphabet: got %+v (%v), want it left out", got, problem)
		}
	}
}
