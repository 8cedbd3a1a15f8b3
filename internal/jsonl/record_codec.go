package jsonl

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"hash/crc32"
	"strconv"
	"time"
	"unicode/utf8"
)

// The line format, one record a line:
//
//	{"_v":1,"id":"<uuid>","t":"<RFC 3339 UTC>","a":<attempts>,"p":<payload JSON>,"c":"<crc32c hex>"}
//	{"_v":1,"id":"<uuid>","t":"<RFC 3339 UTC>","a":<attempts>,"b":"<payload base64>","c":"<crc32c hex>"}
//
// A record spilled from a message may also carry the message's UUID,
// `,"m":"<uuid>"` after "a", so its republish can say which message it
// was (an idempotency key that stays the same from the first try to the
// last); a UUID outside the ID alphabet is not kept.
//
// "p" holds the payload inline when its bytes are JSON that decodes back to
// exactly the same bytes (see inlinable), so `jq .p` shows it; anything else
// goes base64 in "b". "c" is the CRC32C (Castagnoli) of every byte of the line
// before `,"c":"`, so one flipped bit anywhere is caught. The field order is
// fixed, which is what lets the checksum cover the line as written. The first
// key is "_v" rather than "v" so that a legacy line (a raw JSON payload
// written by the original implementation) is very unlikely to look like an
// envelope.

const recordVersion = 1

var (
	linePrefix    = []byte(`{"_v":`)
	crcKey        = []byte(`,"c":"`)
	castagnoli    = crc32.MakeTable(crc32.Castagnoli)
	crcSuffixSize = len(crcKey) + 8 + len(`"}`)
)

// maxIDLen bounds a record ID read from disk; IDs this package writes are 36.
const maxIDLen = 64

// Problem says why a line of a store file could not be read as a record.
type Problem int

// The problems a scan reports. ProblemNone means the line is a record.
const (
	ProblemNone       Problem = iota
	ProblemTornTail           // the file ends without the line's newline: an interrupted write
	ProblemTooLong            // the line is longer than the maximum record size
	ProblemBadJSON            // the line is neither an envelope nor a JSON payload
	ProblemChecksum           // the envelope's CRC32C does not match its bytes
	ProblemBadVersion         // the envelope has a version this package does not know
	ProblemBadRecord          // the envelope is JSON with a good checksum but a bad field
)

// String returns a short lower-case name, suitable for logs and CLIs.
func (p Problem) String() string {
	switch p {
	case ProblemNone:
		return "ok"
	case ProblemTornTail:
		return "torn tail"
	case ProblemTooLong:
		return "too long"
	case ProblemBadJSON:
		return "bad json"
	case ProblemChecksum:
		return "bad checksum"
	case ProblemBadVersion:
		return "unknown version"
	case ProblemBadRecord:
		return "bad record"
	default:
		return "problem(" + strconv.Itoa(int(p)) + ")"
	}
}

// encodedLineSize is the longest line a payload of n bytes can become,
// newline included, whatever its ID (up to maxIDLen), time and attempt
// count: the reader's limit is this for the largest payload, so every
// record a store accepts, and every rewrite of it, stays readable.
func encodedLineSize(n int) int {
	return base64.StdEncoding.EncodedLen(n) + lineOverhead
}

// lineOverhead is every byte of a line but the payload's, at its longest.
const lineOverhead = len(`{"_v":1,"id":"","t":"","a":,"m":"","b":"","c":"00000000"}`+"\n") +
	2*maxIDLen + maxTimeLen + maxAttemptsLen

const (
	maxTimeLen     = len(time.RFC3339Nano) // longer than any UTC time with a four-digit year
	maxAttemptsLen = 19                    // digits of the largest int64
)

// fitsRewritten reports whether rec, re-encoded with any attempt count,
// makes a line of at most maxLine bytes (newline included), the limit of
// the reader that will read it back. A payload within the payload limit
// always does; a larger one only if it stays inline (a legacy payload that
// must go base64 grows by a third).
func fitsRewritten(rec Record, maxLine int) bool {
	if encodedLineSize(len(rec.Payload)) <= maxLine {
		return true
	}
	return longestLine(rec) <= maxLine
}

// longestLine is the length appendRecord gives rec's line with the longest
// attempt count.
func longestLine(rec Record) int {
	var t [64]byte
	n := len(`{"_v":1,"id":"","t":"","a":,"c":"00000000"}`+"\n") + len(rec.ID) + len(messageField(rec.MessageID)) +
		len(clampTime(rec.EnqueuedAt).UTC().AppendFormat(t[:0], time.RFC3339Nano)) + maxAttemptsLen
	if inlinable(rec.Payload) {
		return n + len(`,"p":`) + len(rec.Payload)
	}
	return n + len(`,"b":""`) + base64.StdEncoding.EncodedLen(len(rec.Payload))
}

// appendRecord appends rec's line, newline included, to dst.
func appendRecord(dst []byte, rec Record) []byte {
	return appendLineAs(dst, rec.ID, rec.MessageID, rec.Payload, rec.EnqueuedAt, rec.Attempts, inlinable(rec.Payload))
}

// appendLegacyRecord is appendRecord for the record of a legacy line,
// whose payload the scan found to be JSON (decodeLineReusing): whether it
// can stay inline is decided without validating it again.
func appendLegacyRecord(dst []byte, rec Record) []byte {
	return appendLineAs(dst, rec.ID, rec.MessageID, rec.Payload, rec.EnqueuedAt, rec.Attempts, inlinableJSON(rec.Payload))
}

// messageField is the "m" member for a message UUID, or nothing when
// there is none or the envelope cannot hold it as is.
func messageField(msgID string) string {
	if msgID == "" || !validID(msgID) {
		return ""
	}
	return `,"m":"` + msgID + `"`
}

// appendLineAs is appendRecord with the ID as bytes or a string, so Append
// can format a new ID straight into the line without allocating it, and
// the choice between inline JSON and base64 made by the caller.
func appendLineAs[ID ~string | ~[]byte](dst []byte, id ID, msgID string, payload []byte, at time.Time, attempts int, inline bool) []byte {
	start := len(dst)
	dst = append(dst, linePrefix...)
	dst = strconv.AppendInt(dst, recordVersion, 10)
	dst = append(dst, `,"id":"`...)
	dst = append(dst, id...)
	dst = append(dst, `","t":"`...)
	dst = clampTime(at).UTC().AppendFormat(dst, time.RFC3339Nano)
	dst = append(dst, `","a":`...)
	dst = strconv.AppendInt(dst, int64(attempts), 10)
	if msgID != "" && validID(msgID) {
		dst = append(dst, `,"m":"`...)
		dst = append(dst, msgID...)
		dst = append(dst, '"')
	}
	if inline {
		dst = append(dst, `,"p":`...)
		dst = append(dst, payload...)
	} else {
		dst = append(dst, `,"b":"`...)
		dst = base64.StdEncoding.AppendEncode(dst, payload)
		dst = append(dst, '"')
	}
	sum := crc32c(dst[start:])
	dst = append(dst, crcKey...)
	dst = appendHex32(dst, sum)
	return append(dst, '"', '}', '\n')
}

// parseHex32 reads the 8 hex digits of a checksum (either case, as
// strconv.ParseUint(s, 16, 32) does for 8 digits), without its string
// conversion and error value.
func parseHex32(b []byte) (uint32, bool) {
	if len(b) != 8 {
		return 0, false
	}
	var v uint32
	for _, c := range b {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		v = v<<4 | uint32(c)
	}
	return v, true
}

func appendHex32(dst []byte, v uint32) []byte {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], v)
	return hex.AppendEncode(dst, b[:])
}

// inlinable reports whether p can be stored as raw JSON and read back
// byte-exact. encoding/json hands a json.RawMessage the value's bytes as they
// are, so the only things that could change are whitespace around the value
// (trimmed by the decoder) and newlines (which would split the line). Invalid
// UTF-8 is refused too, so jq and other strict readers accept every line.
func inlinable(p []byte) bool {
	return inlinableJSON(p) && validJSON(p)
}

// inlinableJSON is inlinable for p known to be JSON.
func inlinableJSON(p []byte) bool {
	if len(p) == 0 || isJSONSpace(p[0]) || isJSONSpace(p[len(p)-1]) {
		return false
	}
	if bytes.IndexByte(p, '\n') >= 0 || bytes.IndexByte(p, '\r') >= 0 {
		return false
	}
	return utf8.Valid(p)
}

func isJSONSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r'
}

type envelope struct {
	V  int             `json:"_v"`
	ID string          `json:"id"`
	T  time.Time       `json:"t"`
	A  int             `json:"a"`
	M  string          `json:"m"`
	P  json.RawMessage `json:"p"`
	B  json.RawMessage `json:"b"`
	C  string          `json:"c"`
}

// decodeLine decodes one line (without its newline). A line that is not an
// envelope but is valid JSON is a legacy payload: legacy is true and rec
// holds only the payload (the caller assigns ID and time, see legacyID).
// The returned payload never aliases line.
func decodeLine(line []byte) (rec Record, legacy bool, problem Problem) {
	return decodeLineReusing(line, nil)
}

// decodeLineReusing is decodeLine for scans, which hand each record to a
// callback before reading the next line: with scratch non-nil, an inline
// or legacy payload aliases line and a base64 one is decoded into
// *scratch, so none allocates.
func decodeLineReusing(line []byte, scratch *[]byte) (rec Record, legacy bool, problem Problem) {
	if !bytes.HasPrefix(line, linePrefix) || !envelopeShaped(line) {
		if validJSON(line) {
			if scratch == nil {
				line = bytes.Clone(line)
			}
			return Record{Payload: line}, true, ProblemNone
		}
		return Record{}, false, ProblemBadJSON
	}
	// Check the version before anything else: a newer writer may lay the
	// rest of the line out differently.
	rest := line[len(linePrefix):]
	end := bytes.IndexByte(rest, ',')
	if end < 0 {
		return Record{}, false, ProblemBadJSON
	}
	if v, err := strconv.Atoi(string(rest[:end])); err != nil {
		return Record{}, false, ProblemBadJSON
	} else if v != recordVersion {
		return Record{}, false, ProblemBadVersion
	}
	n := len(line)
	if n < len(linePrefix)+crcSuffixSize || !bytes.Equal(line[n-crcSuffixSize:n-crcSuffixSize+len(crcKey)], crcKey) ||
		line[n-2] != '"' || line[n-1] != '}' {
		return Record{}, false, ProblemBadJSON
	}
	want, ok := parseHex32(line[n-10 : n-2])
	if !ok {
		return Record{}, false, ProblemBadJSON
	}
	if crc32c(line[:n-crcSuffixSize]) != want {
		return Record{}, false, ProblemChecksum
	}
	if rec, ok := decodeEnvelope(line[:n-crcSuffixSize], scratch, true); ok {
		return rec, false, ProblemNone
	}
	// Not laid out as the encoder writes: let encoding/json judge it.
	return decodeEnvelopeJSON(line)
}

// envelopeShaped reports whether line, which starts like an envelope, has
// its shape: a trailing checksum member, or an "id" member at the top
// level. A valid JSON line with neither is a legacy payload whatever its
// "_v" (the original implementation may have written {"_v":2}); one with
// either is an envelope, damaged if it does not decode, so damage never
// turns a record into a payload unless it takes both.
func envelopeShaped(line []byte) bool {
	n := len(line)
	if n >= len(linePrefix)+crcSuffixSize && bytes.Equal(line[n-crcSuffixSize:n-crcSuffixSize+len(crcKey)], crcKey) &&
		line[n-2] == '"' && line[n-1] == '}' {
		return true
	}
	// The encoder writes "id" second; anywhere else only a full decode can
	// tell a top-level key from a nested one.
	rest := line[len(linePrefix):]
	if i := skipDigits(rest, 0); i > 0 && bytes.HasPrefix(rest[i:], []byte(`,"id":`)) {
		return true
	}
	if !bytes.Contains(line, []byte(`"id"`)) {
		return false
	}
	var top map[string]json.RawMessage
	if json.Unmarshal(line, &top) != nil {
		return true // not JSON: damaged, never a payload
	}
	_, ok := top["id"]
	return ok
}

// decodeEnvelopeJSON decodes a whole envelope line, checksum already
// checked, with encoding/json.
func decodeEnvelopeJSON(line []byte) (rec Record, legacy bool, problem Problem) {
	var env envelope
	if err := json.Unmarshal(line, &env); err != nil {
		return Record{}, false, ProblemBadJSON
	}
	if !validID(env.ID) || env.A < 0 || (env.P == nil) == (env.B == nil) || env.M != "" && !validID(env.M) {
		return Record{}, false, ProblemBadRecord
	}
	rec = Record{ID: env.ID, EnqueuedAt: env.T, Attempts: env.A, MessageID: env.M}
	if env.P != nil {
		rec.Payload = env.P // Unmarshal copied it out of line already
	} else {
		if len(env.B) < 2 || env.B[0] != '"' || env.B[len(env.B)-1] != '"' {
			return Record{}, false, ProblemBadRecord
		}
		s, err := base64.StdEncoding.AppendDecode(make([]byte, 0, base64.StdEncoding.DecodedLen(len(env.B)-2)), env.B[1:len(env.B)-1])
		if err != nil {
			return Record{}, false, ProblemBadRecord
		}
		rec.Payload = s
	}
	return rec, false, ProblemNone
}

// decodeEnvelope reads body, a line without its checksum suffix, when it is
// laid out exactly as appendRecord writes it. It is the fast path of
// decodeLine: encoding/json spends most of its time validating and
// reflecting over a layout that is fixed. Whenever it accepts, the answer
// is the one json.Unmarshal into envelope would give; anything unusual
// (escapes, reordered or extra keys, leading zeros, whitespace) makes it
// return false so the caller falls back to encoding/json. scratch is as
// for decodeLineReusing.
//
// summed says the line's CRC32C matched, so its bytes are the ones the
// encoder wrote, which put the payload inline only once validJSON (and
// inlinableJSON) accepted it: see payloadJSON. decodeLineReusing always
// passes true; FuzzDecodeEnvelope checks the answers with false against
// encoding/json, and those with true against the answers with false.
func decodeEnvelope(body []byte, scratch *[]byte, summed bool) (rec Record, ok bool) {
	const head = `{"_v":1,"id":"`
	if !bytes.HasPrefix(body, []byte(head)) {
		return rec, false
	}
	rest := body[len(head):]
	id, rest, ok := cutQuoted(rest, validID[[]byte])
	if !ok || !bytes.HasPrefix(rest, []byte(`,"t":"`)) {
		return rec, false
	}
	t, rest, ok := cutQuoted(rest[len(`,"t":"`):], isTimeText)
	if !ok || !bytes.HasPrefix(rest, []byte(`,"a":`)) {
		return rec, false
	}
	if at, ok := parseZuluTime(t); ok {
		rec.EnqueuedAt = at
	} else if err := rec.EnqueuedAt.UnmarshalText(t); err != nil { // what Time.UnmarshalJSON does
		return rec, false
	}
	rest = rest[len(`,"a":`):]
	digits := skipDigits(rest, 0)
	if digits == 0 || digits > 18 || digits > 1 && rest[0] == '0' {
		return rec, false
	}
	for _, c := range rest[:digits] {
		rec.Attempts = rec.Attempts*10 + int(c-'0')
	}
	rest = rest[digits:]
	var msgID []byte
	if bytes.HasPrefix(rest, []byte(`,"m":"`)) {
		if msgID, rest, ok = cutQuoted(rest[len(`,"m":"`):], validID[[]byte]); !ok {
			return rec, false
		}
	}
	switch {
	case bytes.HasPrefix(rest, []byte(`,"p":`)):
		p := rest[len(`,"p":`):]
		// json.RawMessage gets the value without surrounding whitespace.
		if len(p) == 0 || isJSONSpace(p[0]) || isJSONSpace(p[len(p)-1]) || !payloadJSON(p, summed) {
			return rec, false
		}
		if scratch == nil {
			p = bytes.Clone(p)
		}
		rec.Payload = p
	case bytes.HasPrefix(rest, []byte(`,"b":"`)):
		b := rest[len(`,"b":"`):]
		// The base64 decoder skips CR and LF, which JSON would refuse raw
		// in a string; every other byte it accepts is plain in JSON.
		if len(b) == 0 || b[len(b)-1] != '"' || bytes.IndexByte(b, '\r') >= 0 || bytes.IndexByte(b, '\n') >= 0 {
			return rec, false
		}
		b = b[:len(b)-1]
		var dst []byte
		if scratch != nil {
			dst = (*scratch)[:0]
		}
		p, err := base64.StdEncoding.AppendDecode(dst, b)
		if err != nil {
			return rec, false
		}
		if scratch != nil {
			*scratch = p
		}
		rec.Payload = p
	default:
		return rec, false
	}
	rec.ID = string(id)
	if msgID != nil {
		rec.MessageID = string(msgID)
	}
	return rec, true
}

// payloadJSON reports whether p, an inline payload, can be handed back as
// the envelope's "p". Unsummed, p must be JSON (validJSON). Summed, the
// checksum vouches for the bytes and validating them again would be a
// third of a replay's decoding: an object or array is only checked to
// close at its last byte (so a line no encoder wrote, with a good
// checksum and more keys after "p", still goes to encoding/json and is
// refused there), reading its strings only for where they end; a scalar,
// short or a string, is validated as before.
func payloadJSON(p []byte, summed bool) bool {
	if !summed || p[0] != '{' && p[0] != '[' {
		return validJSON(p)
	}
	depth := 0
	for i := 0; i < len(p); i++ {
		switch p[i] {
		case '{', '[':
			depth++
		case '}', ']':
			if depth--; depth == 0 {
				return i == len(p)-1
			}
		case '"':
			// The closing quote: the next one not escaped by an odd
			// run of backslashes.
			for j := i + 1; ; {
				q := bytes.IndexByte(p[j:], '"')
				if q < 0 {
					return false
				}
				j += q
				k := j
				for k > i+1 && p[k-1] == '\\' {
					k--
				}
				if (j-k)%2 == 0 {
					i = j
					break
				}
				j++
			}
		}
	}
	return false
}

// cutQuoted splits s at its first quote, if what comes before it passes
// valid; the quote itself is dropped.
func cutQuoted(s []byte, valid func([]byte) bool) (before, after []byte, ok bool) {
	i := bytes.IndexByte(s, '"')
	if i < 0 || !valid(s[:i]) {
		return nil, nil, false
	}
	return s[:i], s[i+1:], true
}

// parseZuluTime reads the times the encoder writes, RFC 3339 in UTC with
// up to nine fraction digits (2006-01-02T15:04:05.999999999Z), with the
// answer Time.UnmarshalText gives, at a fraction of its cost (it was a
// sixth of a replay's decoding). Anything else is not ok, for
// UnmarshalText to judge. FuzzParseZuluTime checks the two agree.
func parseZuluTime(b []byte) (time.Time, bool) {
	if len(b) < len("2006-01-02T15:04:05Z") || len(b) > len("2006-01-02T15:04:05.999999999Z") ||
		b[4] != '-' || b[7] != '-' || b[10] != 'T' || b[13] != ':' || b[16] != ':' || b[len(b)-1] != 'Z' {
		return time.Time{}, false
	}
	ok := true
	num := func(digits []byte) int {
		n := 0
		for _, c := range digits {
			if c < '0' || c > '9' {
				ok = false
			}
			n = n*10 + int(c-'0')
		}
		return n
	}
	year, month, day := num(b[0:4]), num(b[5:7]), num(b[8:10])
	hour, minute, sec := num(b[11:13]), num(b[14:16]), num(b[17:19])
	nsec := 0
	if frac := b[19 : len(b)-1]; len(frac) > 0 {
		if len(frac) < 2 || frac[0] != '.' {
			return time.Time{}, false
		}
		nsec = num(frac[1:])
		for range 10 - len(frac) {
			nsec *= 10
		}
	}
	if !ok || month < 1 || month > 12 || day < 1 || day > daysIn(month, year) || hour > 23 || minute > 59 || sec > 59 {
		return time.Time{}, false
	}
	return time.Date(year, time.Month(month), day, hour, minute, sec, nsec, time.UTC), true
}

func daysIn(month, year int) int {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// isTimeText accepts the bytes an RFC 3339 time can hold, none of which
// needs escaping in JSON.
func isTimeText(b []byte) bool {
	for _, c := range b {
		if !('0' <= c && c <= '9' || c == '-' || c == ':' || c == '.' || c == '+' || c == 'T' || c == 'Z') {
			return false
		}
	}
	return true
}

// validID accepts the characters an encoder may write unescaped, so a
// decoded record can be re-encoded as is.
func validID[T ~string | ~[]byte](id T) bool {
	if len(id) == 0 || len(id) > maxIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		if !idByte[id[i]] {
			return false
		}
	}
	return true
}

// idByte marks the bytes validID accepts: a table, because the replay
// checks every record's ID and the chain of comparisons showed in its
// profile as a tenth of the decoding.
var idByte = func() (t [256]bool) {
	for c := 0; c < 256; c++ {
		t[c] = '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c == '-' || c == '_' || c == '.'
	}
	return t
}()

func crc32c(b []byte) uint32 { return crc32.Checksum(b, castagnoli) }
