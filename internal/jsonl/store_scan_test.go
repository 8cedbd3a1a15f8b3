package jsonl

import (
	"bytes"
	"fmt"
	"io"
	"testing"
	"testing/iotest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// scanRecords splits lines the same way whether a line is handed out from
// the read buffer in place (a whole line within it) or gathered from
// pieces (longer than the buffer, or cut by the reader), and however the
// reader cuts its input.
func TestScanRecordsSplitsLines(t *testing.T) {
	// Below and above the reader's 64 KiB buffer.
	for _, maxLine := range []int{100, 200 << 10} {
		t.Run(fmt.Sprintf("max=%d", maxLine), func(t *testing.T) { testScanSplits(t, maxLine) })
	}
}

func testScanSplits(t *testing.T, maxLine int) {
	line := func(n int) []byte {
		if n < 2 {
			return bytes.Repeat([]byte("1"), n)
		}
		return append(append([]byte{'"'}, bytes.Repeat([]byte("x"), n-2)...), '"')
	}
	var lines [][]byte
	sizes := []int{0, 1, 2, 99, 100, 101, 102, 64<<10 - 1, 64 << 10, 64<<10 + 1, 10, 150 << 10, maxLine - 1, maxLine, maxLine + 1, 3, 300 << 10, 5}
	var tooLong []byte
	for _, n := range sizes {
		lines = append(lines, line(n))
		if n > maxLine {
			tooLong = append(append(tooLong, line(n)...), '\n')
		}
	}
	var input []byte
	for _, l := range lines {
		input = append(append(input, l...), '\n')
	}
	input = append(input, line(7)...) // a torn tail
	lines = append(lines, line(7))

	readers := map[string]func() io.Reader{
		"whole":    func() io.Reader { return bytes.NewReader(input) },
		"half":     func() io.Reader { return iotest.HalfReader(bytes.NewReader(input)) },
		"one byte": func() io.Reader { return iotest.OneByteReader(bytes.NewReader(input)) },
	}
	for name, r := range readers {
		t.Run(name, func(t *testing.T) {
			var overflow bytes.Buffer
			i, off := 0, int64(0)
			err := scanRecords(r(), maxLine, time.Time{}, &overflow, func(e *ScanEntry, raw []byte) error {
				require.Less(t, i, len(lines))
				want := lines[i]
				assert.Equal(t, i+1, e.Line)
				assert.Equal(t, off, e.Offset, "line %d", i+1)
				torn := i == len(lines)-1
				size := int64(len(want))
				if !torn {
					size++
				}
				assert.Equal(t, size, e.Length, "line %d", i+1)
				switch {
				case len(want) > maxLine:
					assert.Equal(t, ProblemTooLong, e.Problem, "line %d", i+1)
					assert.Nil(t, raw)
				case torn:
					assert.Equal(t, ProblemTornTail, e.Problem)
					assert.Equal(t, want, raw)
				default:
					assert.True(t, bytes.Equal(want, raw), "line %d: %d bytes, want %d", i+1, len(raw), len(want))
					wantProblem := ProblemNone
					if len(want) == 0 {
						wantProblem = ProblemBadJSON
					}
					assert.Equal(t, wantProblem, e.Problem, "line %d", i+1)
				}
				i++
				off += e.Length
				return nil
			})
			require.NoError(t, err)
			assert.Equal(t, len(lines), i)
			// The too-long lines went to overflow as they were, newline
			// included.
			assert.True(t, bytes.Equal(tooLong, overflow.Bytes()), "overflow: %d bytes, want %d", overflow.Len(), len(tooLong))
		})
	}
}
