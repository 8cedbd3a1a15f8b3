package jsonl

import (
	"testing"
	"time"
)

// BenchmarkDecodeLine measures decoding one 1 KiB record line, base64 and
// inline, on the fast path and through encoding/json.
func BenchmarkDecodeLine(b *testing.B) {
	inline := []byte(`{"cmd":"` + string(benchPayload[8:1000]) + `"}`)
	at := time.Date(2025, 3, 4, 5, 6, 7, 890123456, time.UTC)
	for _, tc := range []struct {
		name    string
		payload []byte
	}{{"base64", benchPayload}, {"inline", inline}} {
		line := appendRecord(nil, Record{ID: "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b", Payload: tc.payload, EnqueuedAt: at})
		line = line[:len(line)-1]
		b.Run(tc.name, func(b *testing.B) {
			b.SetBytes(int64(len(line)))
			b.ReportAllocs()
			for b.Loop() {
				if _, _, p := decodeLine(line); p != ProblemNone {
					b.Fatal(p)
				}
			}
		})
		b.Run(tc.name+"/encoding-json", func(b *testing.B) {
			b.SetBytes(int64(len(line)))
			b.ReportAllocs()
			for b.Loop() {
				if _, _, p := decodeEnvelopeJSON(line); p != ProblemNone {
					b.Fatal(p)
				}
			}
		})
	}
}
