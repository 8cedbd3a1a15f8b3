package jsonl

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"
)

var validJSONCases = []string{
	``, ` `, `null`, `true`, `false`, `nul`, `truex`, `tru`, ` null `, "\t\r\n1\n",
	`0`, `-0`, `01`, `-`, `1.`, `1.5`, `.5`, `1e`, `1e+`, `1E-7`, `1e07`, `-12.5e3`, `+1`, `0x1`,
	`""`, `"a"`, `"\""`, `"\\"`, `"\/\b\f\n\r\t"`, `"\u00e9"`, `"\u00G9"`, `"\u00e"`, `"\x"`, `"`, `"a`,
	"\"\x01\"", "\"\x1f\"", `"0123456789abcdef\"0123"`, "\"0123456789\x00abcdef\"", "\"\x7f\"", "\"\xff\xfe\"", `"\`,
	`{}`, `[]`, `{ }`, `[ ]`, `{"a":1}`, `{"a" : 1 , "b":[1,2,{"c":null}]}`, `{"a":1,}`, `[1,]`, `[,1]`,
	`{"a"}`, `{"a":}`, `{1:2}`, `{"a":1 "b":2}`, `[1 2]`, `[`, `]`, `{`, `}`, `[}`, `{]`, `[[]]`, `[[]`,
	`{"a":[}`, `1 2`, `{} {}`, `[1]x`, `"a"1`, `{"cmd":"ls -la","exit":0}`,
}

func TestValidJSONAgreesWithEncodingJSON(t *testing.T) {
	for _, in := range validJSONCases {
		if got, want := validJSON([]byte(in)), json.Valid([]byte(in)); got != want {
			t.Errorf("validJSON(%q) = %v, json.Valid says %v", in, got, want)
		}
	}
}

func TestValidJSONNestingLimit(t *testing.T) {
	for _, depth := range []int{maxJSONDepth - 1, maxJSONDepth, maxJSONDepth + 1} {
		for _, open := range []string{"[", `{"k":`} {
			closeTok := "]"
			if open != "[" {
				closeTok = "}"
			}
			in := []byte(strings.Repeat(open, depth) + "1" + strings.Repeat(closeTok, depth))
			if got, want := validJSON(in), json.Valid(in); got != want {
				t.Errorf("depth %d of %q: validJSON = %v, json.Valid = %v", depth, open, got, want)
			}
		}
	}
}

// Strings are read a byte at a time, then a word at a time, then past 48
// bytes a window at a time (skipPlain): bytes that matter, at every place
// around those boundaries, in strings long enough to reach them, are
// judged as encoding/json judges them; up to 20 bytes, every byte value is.
func TestValidJSONLongStrings(t *testing.T) {
	interesting := []byte{0, 1, '\n', 0x1f, ' ', '"', '\\', 'u', '0', 0x7f, 0x80, 0xc3, 0xff}
	bounds := []int{0, 16, 24, 32, 40, 48}             // bytes, then skipPlain's words
	for b, w := 48, 64; b < 3000; w = min(2*w, 1024) { // and its windows
		b += w
		bounds = append(bounds, b)
	}
	var lengths []int
	for n := 1; n <= 80; n++ {
		lengths = append(lengths, n)
	}
	for _, b := range bounds[6:] {
		lengths = append(lengths, b-1, b+1)
	}
	near := func(at, n int) bool {
		for _, b := range append(bounds, n) {
			if at >= b-10 && at <= b+10 {
				return true
			}
		}
		return n <= 80
	}
	const prefix = `{"k":"`
	for _, n := range lengths {
		values := interesting
		if n <= 20 {
			values = make([]byte, 256)
			for c := range values {
				values[c] = byte(c)
			}
		}
		for at := range n {
			if !near(at, n) {
				continue
			}
			for _, c := range values {
				b := []byte(prefix + strings.Repeat("x", n) + `"}`)
				b[len(prefix)+at] = c
				if got, want := validJSON(b), json.Valid(b); got != want {
					t.Fatalf("byte %#x at %d of %d: validJSON = %v, json.Valid = %v", c, at, n, got, want)
				}
				if at+1 < n { // an escape, whatever follows the backslash
					b[len(prefix)+at], b[len(prefix)+at+1] = '\\', c
					if got, want := validJSON(b), json.Valid(b); got != want {
						t.Fatalf("backslash and %#x at %d of %d: validJSON = %v, json.Valid = %v", c, at, n, got, want)
					}
				}
			}
		}
	}
}

// A long string with an escape after every 60 bytes (past what skipPlain
// reads a word at a time) takes time in proportion to its length:
// skipPlain searches a window at a time, not to the closing quote after
// each escape. Checked as a ratio, not a time, so a busy machine does not
// fail it: four times the length takes about four times as long when the
// scan is linear, sixteen when it searches to the quote (which took 7 s
// for 8 MiB on a 2-core VM). The best of five runs of each is compared.
func TestValidJSONManyEscapesLinear(t *testing.T) {
	best := func(lines int) time.Duration {
		s := []byte(`"` + strings.Repeat(strings.Repeat("x", 60)+`\n`, lines) + `"`)
		d := time.Duration(math.MaxInt64)
		for range 5 {
			start := time.Now()
			if !validJSON(s) {
				t.Fatal("valid string refused")
			}
			d = min(d, time.Since(start))
		}
		return d
	}
	small, large := best(1<<13), best(1<<15)
	if ratio := float64(large) / float64(max(small, 1)); ratio > 9 {
		t.Errorf("4x the length took %.1fx the time (%v, %v): the scan is not linear", ratio, small, large)
	}
}

func FuzzValidJSON(f *testing.F) {
	for _, in := range validJSONCases {
		f.Add([]byte(in))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		if got, want := validJSON(in), json.Valid(in); got != want {
			t.Fatalf("validJSON = %v, json.Valid = %v", got, want)
		}
	})
}
