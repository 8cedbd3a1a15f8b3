package jsonl

import (
	"bytes"
	"encoding/binary"
)

// validJSON reports whether p is exactly one JSON value, optionally
// surrounded by whitespace: the same answer as json.Valid, including its
// nesting limit and its acceptance of invalid UTF-8 inside strings. It
// exists because json.Valid runs a byte-at-a-time state machine (about
// 4 µs per KiB), and the store calls this for every payload it inlines at
// Append and every inline payload it reads back at Replay.
// FuzzValidJSON checks the two agree.
func validJSON(p []byte) bool {
	var stackBuf [64]byte
	open := stackBuf[:0] // '{' or '[' for each container entered
	i := skipJSONSpace(p, 0)
	for {
		// A value starts at i.
		if i >= len(p) {
			return false
		}
		var ok bool
		switch c := p[i]; {
		case c == '{' || c == '[':
			if len(open) >= maxJSONDepth {
				return false
			}
			open = append(open, c)
			i = skipJSONSpace(p, i+1)
			if i < len(p) && p[i] == c+2 { // '{'+2 == '}', '['+2 == ']'
				open = open[:len(open)-1]
				i, ok = i+1, true
				break
			}
			if c == '{' {
				if i, ok = scanJSONKey(p, i); !ok {
					return false
				}
			}
			continue
		case c == '"':
			i, ok = scanJSONString(p, i)
		case c == '-' || '0' <= c && c <= '9':
			i, ok = scanJSONNumber(p, i)
		case c == 't':
			i, ok = scanJSONLiteral(p, i, "true")
		case c == 'f':
			i, ok = scanJSONLiteral(p, i, "false")
		case c == 'n':
			i, ok = scanJSONLiteral(p, i, "null")
		default:
			return false
		}
		if !ok {
			return false
		}
		// A value ended at i: close containers until a comma asks for the
		// next value.
	closing:
		for {
			i = skipJSONSpace(p, i)
			if len(open) == 0 {
				return i == len(p)
			}
			if i >= len(p) {
				return false
			}
			top := open[len(open)-1]
			switch p[i] {
			case ',':
				i = skipJSONSpace(p, i+1)
				if top == '{' {
					if i, ok = scanJSONKey(p, i); !ok {
						return false
					}
				}
				break closing
			case top + 2:
				open = open[:len(open)-1]
				i++
			default:
				return false
			}
		}
	}
}

// maxJSONDepth is encoding/json's nesting limit.
const maxJSONDepth = 10000

func skipJSONSpace(p []byte, i int) int {
	for i < len(p) && isJSONSpace(p[i]) {
		i++
	}
	return i
}

// scanJSONKey reads `"key" :` and the whitespace after it, from i.
func scanJSONKey(p []byte, i int) (int, bool) {
	if i >= len(p) || p[i] != '"' {
		return i, false
	}
	i, ok := scanJSONString(p, i)
	if !ok {
		return i, false
	}
	i = skipJSONSpace(p, i)
	if i >= len(p) || p[i] != ':' {
		return i, false
	}
	return skipJSONSpace(p, i+1), true
}

// plainStringByte marks the bytes a JSON string holds as they are: not a
// control character, quote or backslash.
var plainStringByte = func() (t [256]bool) {
	for c := 0x20; c < 256; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// scanJSONString reads the string whose opening quote is at i and returns
// the index after its closing quote.
func scanJSONString(p []byte, i int) (int, bool) {
	i++
	for {
		// A byte at a time first: most strings end, or reach an escape,
		// within a few bytes. Past those, skipPlain takes bigger steps.
		n := min(len(p), i+16)
		for i < n && plainStringByte[p[i]] {
			i++
		}
		if i == n {
			i = skipPlain(p, i)
			for i < len(p) && plainStringByte[p[i]] {
				i++
			}
		}
		if i >= len(p) {
			return i, false
		}
		switch p[i] {
		case '"':
			return i + 1, true
		case '\\':
			if i+1 >= len(p) {
				return i, false
			}
			switch p[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(p) {
					return i, false
				}
				for _, h := range p[i+2 : i+6] {
					if !('0' <= h && h <= '9' || 'a' <= h && h <= 'f' || 'A' <= h && h <= 'F') {
						return i, false
					}
				}
				i += 6
			default:
				return i, false
			}
		default: // a control character
			return i, false
		}
	}
}

// skipPlain returns the index of the first byte from i on that a JSON
// string cannot hold as it is (see plainStringByte), or len(p), or an
// index before that byte, where the caller's byte loop takes over.
// Payloads are mostly strings, long ones: read a byte at a time, they
// made validation over a third of the CPU time of migrating a legacy
// file. This reads a string's next bytes a word at a time, and what
// follows with the standard library's vector search.
func skipPlain(p []byte, i int) int {
	// Eight bytes at a time: the end may well be near, where a call to
	// bytes.IndexByte costs more.
	for range 4 {
		if len(p)-i < 8 || specialWord(binary.LittleEndian.Uint64(p[i:])) {
			return i
		}
		i += 8
	}
	// A long string: its end (a quote) or next escape, then a check that
	// no control byte comes before. A window at a time, doubling while
	// the bytes stay plain, so that an escape after every few dozen bytes
	// does not search ahead much further than that each time.
	for window := 64; i < len(p); window = min(2*window, 1024) {
		w := p[i:min(len(p), i+window)]
		end := len(w)
		if q := bytes.IndexByte(w, '"'); q >= 0 {
			end = q
		}
		if b := bytes.IndexByte(w[:end], '\\'); b >= 0 {
			end = b
		}
		n := controlFree(w[:end])
		i += n
		if n < len(w) {
			return i
		}
	}
	return i
}

// Bytes tested eight at a time: for a word x, (x - n*wordOnes) &^ x &
// wordHighs is non-zero exactly when one of its bytes is below n (n <=
// 0x80), and a byte equal to c is a zero byte of x ^ c*wordOnes.
const (
	wordOnes  = 0x0101010101010101
	wordHighs = 0x8080808080808080
)

// belowSpace(w) & wordHighs is non-zero when a byte of w is a control
// byte (below 0x20).
func belowSpace(w uint64) uint64 { return (w - 0x20*wordOnes) &^ w }

// specialWord reports whether one of w's bytes is a quote, a backslash or
// a control byte.
func specialWord(w uint64) bool {
	q := w ^ ('"' * wordOnes)
	b := w ^ ('\\' * wordOnes)
	return ((q-wordOnes)&^q|(b-wordOnes)&^b|belowSpace(w))&wordHighs != 0
}

// controlFree returns the length of the longest prefix of s without a
// control byte.
func controlFree(s []byte) int {
	i := 0
	for ; len(s)-i >= 32; i += 32 {
		w := s[i : i+32]
		a, b := binary.LittleEndian.Uint64(w), binary.LittleEndian.Uint64(w[8:])
		c, d := binary.LittleEndian.Uint64(w[16:]), binary.LittleEndian.Uint64(w[24:])
		if (belowSpace(a)|belowSpace(b)|belowSpace(c)|belowSpace(d))&wordHighs != 0 {
			break
		}
	}
	for ; len(s)-i >= 8; i += 8 {
		if belowSpace(binary.LittleEndian.Uint64(s[i:]))&wordHighs != 0 {
			break
		}
	}
	for i < len(s) && s[i] >= 0x20 {
		i++
	}
	return i
}

// scanJSONNumber reads -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? from i.
func scanJSONNumber(p []byte, i int) (int, bool) {
	if p[i] == '-' {
		i++
	}
	switch {
	case i < len(p) && p[i] == '0':
		i++
	case i < len(p) && '1' <= p[i] && p[i] <= '9':
		i = skipDigits(p, i+1)
	default:
		return i, false
	}
	if i < len(p) && p[i] == '.' {
		j := skipDigits(p, i+1)
		if j == i+1 {
			return j, false
		}
		i = j
	}
	if i < len(p) && (p[i] == 'e' || p[i] == 'E') {
		i++
		if i < len(p) && (p[i] == '+' || p[i] == '-') {
			i++
		}
		j := skipDigits(p, i)
		if j == i {
			return j, false
		}
		i = j
	}
	return i, true
}

func skipDigits(p []byte, i int) int {
	for i < len(p) && '0' <= p[i] && p[i] <= '9' {
		i++
	}
	return i
}

func scanJSONLiteral(p []byte, i int, lit string) (int, bool) {
	if len(p)-i < len(lit) || string(p[i:i+len(lit)]) != lit {
		return i, false
	}
	return i + len(lit), true
}
