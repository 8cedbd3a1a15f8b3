package jsonl

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
		for i < len(p) && plainStringByte[p[i]] {
			i++
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
