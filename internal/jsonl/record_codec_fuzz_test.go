package jsonl

import (
	"bytes"
	"errors"
	"strconv"
	"testing"
	"time"
)

// FuzzDecodeLine feeds arbitrary bytes to the line decoder (it must never
// panic, and whatever it accepts must re-encode to a line it decodes the
// same way), and uses the same bytes as a payload: encode then decode must
// give them back byte-exact, in one line that is valid for the decoder.
func FuzzDecodeLine(f *testing.F) {
	f.Add([]byte(`{"cmd":"ls"}`), int64(0), 0)
	f.Add([]byte("not json\n"), int64(1700000000123456789), 3)
	f.Add([]byte{}, int64(-1), 1)
	f.Add([]byte(` {"a" : 1}`), int64(42), 0)
	f.Fuzz(func(t *testing.T, data []byte, nanos int64, attempts int) {
		// 1. Arbitrary bytes as a line.
		rec, legacy, problem := decodeLine(data)
		if problem == ProblemNone && !legacy {
			again, _, p2 := decodeLine(bytes.TrimSuffix(appendRecord(nil, rec), []byte("\n")))
			if p2 != ProblemNone || again.ID != rec.ID || !bytes.Equal(again.Payload, rec.Payload) ||
				again.Attempts != rec.Attempts || !again.EnqueuedAt.Equal(rec.EnqueuedAt) {
				t.Fatalf("accepted record does not survive re-encoding (problem %v)", p2)
			}
		}
		if legacy && !bytes.Equal(rec.Payload, data) {
			t.Fatal("legacy payload changed")
		}

		// 2. Arbitrary bytes as a payload.
		if attempts < 0 {
			attempts = -attempts
		}
		if attempts < 0 {
			attempts = 0
		}
		at := time.Unix(0, nanos).UTC()
		if at.Year() < 0 || at.Year() > 9999 {
			at = time.Unix(0, 0)
		}
		in := Record{ID: "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b", Payload: data, EnqueuedAt: at, Attempts: attempts}
		line := appendRecord(nil, in)
		if bytes.IndexByte(line, '\n') != len(line)-1 {
			t.Fatal("encoded record is not exactly one line")
		}
		out, legacy, problem := decodeLine(line[:len(line)-1])
		if problem != ProblemNone || legacy {
			t.Fatalf("own line rejected: %v", problem)
		}
		if !bytes.Equal(out.Payload, data) {
			t.Fatalf("payload not byte-exact: %d bytes in, %d out", len(data), len(out.Payload))
		}
		if out.ID != in.ID || out.Attempts != in.Attempts || !out.EnqueuedAt.Equal(in.EnqueuedAt) {
			t.Fatal("record fields changed")
		}
	})
}

// FuzzDecodeEnvelope checks the hand-written fast path against
// encoding/json: whenever decodeEnvelope accepts a body, decoding the same
// line with encoding/json must give the very same record. Decoding into a
// reused buffer must not change the answer either.
func FuzzDecodeEnvelope(f *testing.F) {
	at := time.Date(2025, 3, 4, 5, 6, 7, 890123456, time.UTC)
	for _, p := range [][]byte{[]byte(`{"cmd":"ls"}`), []byte("echo secret"), {}, []byte(`"\u00e9"`), []byte(`[1, 2]`)} {
		line := appendRecord(nil, Record{ID: "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b", Payload: p, EnqueuedAt: at, Attempts: 12})
		f.Add(line[:len(line)-1-crcSuffixSize])
	}
	f.Add([]byte(`{"_v":1,"id":"a","t":"2025-01-01T00:00:00+01:00","a":0,"p":1,"b":"AA=="`))
	f.Add([]byte(`{"_v":1,"id":"a","t":"2025-01-01T00:00:00Z","a":01,"p":{"x":1},"p":2`))
	f.Add([]byte(`{"_v":1,"id":"a","t":"2025-01-01T00:00:00Z","a":0,"b":"A\rA=="`))
	f.Fuzz(func(t *testing.T, body []byte) {
		fast, ok := decodeEnvelope(body, nil, false)
		scratch := []byte("stale")
		reused, okReused := decodeEnvelope(body, &scratch, false)
		if ok != okReused || ok && !bytes.Equal(fast.Payload, reused.Payload) {
			t.Fatal("decoding into a reused buffer changes the result")
		}
		// A body whose checksum matched skips only the payload's
		// validation: the same answer, or else an inline payload that is
		// not JSON, handed back as the bytes after "p".
		summed, okSummed := decodeEnvelope(body, nil, true)
		switch {
		case ok && (!okSummed || !sameRecord(fast, summed)):
			t.Fatal("a checked checksum changes an accepted record")
		case !ok && okSummed && (validJSON(summed.Payload) || !bytes.HasSuffix(body, append([]byte(`,"p":`), summed.Payload...))):
			t.Fatal("a checked checksum accepts more than an unvalidated inline payload")
		}
		if !ok {
			return
		}
		line := append(appendHex32(append(bytes.Clone(body), crcKey...), crc32c(body)), '"', '}')
		slow, _, problem := decodeEnvelopeJSON(line)
		if problem != ProblemNone {
			t.Fatalf("fast path accepted what encoding/json calls %v", problem)
		}
		if fast.ID != slow.ID || fast.Attempts != slow.Attempts || !bytes.Equal(fast.Payload, slow.Payload) ||
			!fast.EnqueuedAt.Equal(slow.EnqueuedAt) || fast.EnqueuedAt.Location().String() != slow.EnqueuedAt.Location().String() {
			t.Fatal("fast path and encoding/json disagree")
		}
	})
}

func sameRecord(a, b Record) bool {
	return a.ID == b.ID && a.Attempts == b.Attempts && bytes.Equal(a.Payload, b.Payload) && a.EnqueuedAt.Equal(b.EnqueuedAt)
}

// FuzzParseHex32 checks the checksum's hex reader against strconv.
func FuzzParseHex32(f *testing.F) {
	for _, s := range []string{"c9cf5f6f", "81900316", "FFFFFFFF", "0000000g", "+1234567", "0x123456", "1234567", "123456789"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got, ok := parseHex32(b)
		want, err := strconv.ParseUint(string(b), 16, 32)
		if len(b) != 8 {
			err = errors.Join(err, errors.New("not 8 digits"))
		}
		if ok != (err == nil) || ok && got != uint32(want) {
			t.Fatalf("parseHex32(%q) = %x, %v; strconv: %x, %v", b, got, ok, want, err)
		}
	})
}

// TestDecodeLineChecksummedPayloadBounds: with a good checksum an inline
// object or array is not validated again, but it must still close at the
// line's "c": a line no encoder wrote, hiding more keys after it, goes to
// encoding/json and gets its answer, as before (refused, or the payload
// encoding/json picks).
func TestDecodeLineChecksummedPayloadBounds(t *testing.T) {
	const head = `{"_v":1,"id":"a","t":"2025-01-01T00:00:00Z","a":0,"p":`
	for _, tc := range []struct {
		payload string
		want    string // "" when the line is refused
	}{
		{`{"cmd":"ls"}`, `{"cmd":"ls"}`},
		{`{"a":"x\"},\"b\":1"}`, `{"a":"x\"},\"b\":1"}`},
		{`{"a":"\\"}`, `{"a":"\\"}`},
		{`[1,{"b":[2]}]`, `[1,{"b":[2]}]`},
		{`{"a":1},"b":"AA=="`, ""},
		{`{"a":"\\"},"b":"AA=="`, ""},
		{`{"a":1},"p":{"c":2}`, `{"c":2}`}, // encoding/json: the last "p" wins
		{`[1],"x":[2]`, `[1]`},             // and an unknown key is ignored
		{`{"a":"unterminated}`, ""},
		{`{"a":[}`, ""},
	} {
		body := head + tc.payload
		line := append(appendHex32(append([]byte(body), crcKey...), crc32c([]byte(body))), '"', '}')
		rec, _, problem := decodeLine(line)
		switch {
		case tc.want == "" && problem == ProblemNone:
			t.Errorf("payload %s: decoded as %s, want it refused", tc.payload, rec.Payload)
		case tc.want != "" && (problem != ProblemNone || string(rec.Payload) != tc.want):
			t.Errorf("payload %s: %v, payload %s, want %s", tc.payload, problem, rec.Payload, tc.want)
		}
	}
}

// FuzzParseZuluTime checks the encoder's time reader against
// Time.UnmarshalText: whatever it reads, UnmarshalText reads the same.
func FuzzParseZuluTime(f *testing.F) {
	for _, s := range []string{"2026-11-27T04:11:14.026181909Z", "2024-02-29T23:59:59Z", "2023-02-29T00:00:00Z",
		"2025-01-01T00:00:00.Z", "2025-01-01T00:00:00.5Z", "2025-13-01T00:00:00Z", "2025-01-01T24:00:00Z",
		"2025-01-01T00:00:60Z", "0000-01-01T00:00:00Z", "2025-01-01T00:00:00+01:00", "2025-01-01t00:00:00Z"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got, ok := parseZuluTime(b)
		if !ok {
			return
		}
		var want time.Time
		if err := want.UnmarshalText(b); err != nil {
			t.Fatalf("parseZuluTime(%q) = %v; UnmarshalText: %v", b, got, err)
		}
		if !got.Equal(want) || got.Location().String() != want.Location().String() || got != want {
			t.Fatalf("parseZuluTime(%q) = %v; UnmarshalText: %v", b, got, want)
		}
	})
}
