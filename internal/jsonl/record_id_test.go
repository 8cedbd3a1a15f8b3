package jsonl

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestLegacyIDStable(t *testing.T) {
	line := []byte(`{"cmd":"ls"}`)
	a, b := legacyID(10, line), legacyID(10, line)
	assert.Equal(t, a, b)
	assert.NotEqual(t, a, legacyID(11, line), "same content elsewhere is another record")
	assert.True(t, validID(a))
	assert.Equal(t, byte('8'), a[14], "UUID version 8")
}

// The derivation is a format: a legacy file scanned by one version and
// migrated by another must show the same IDs. These are the IDs it has
// always given.
func TestLegacyIDPinned(t *testing.T) {
	for _, c := range []struct {
		off  int64
		line string
		want string
	}{
		{10, `{"cmd":"ls"}`, "1157256f-6a2d-83ee-a827-7016fb32fee7"},
		{0, `[]`, "c0f81e17-9e73-85a8-bef1-2730efe2f374"},
		{1 << 40, `"\u00e9"`, "7be6bbc7-2ee5-8f31-ba68-9df4fbf0337b"},
	} {
		assert.Equal(t, c.want, legacyID(c.off, []byte(c.line)), "offset %d", c.off)
	}
}

func TestLegacyIDAllocs(t *testing.T) {
	line := []byte(`{"cmd":"ls"}`)
	allocs := testing.AllocsPerRun(100, func() { _ = legacyID(10, line) })
	assert.LessOrEqual(t, allocs, 1.0, "only the ID string")
}

func TestIDGenSortableAndUnique(t *testing.T) {
	var g idGen
	now := time.Unix(1700000000, 0)
	seen := map[string]bool{}
	prev := ""
	for i := range 10000 { // > 4096 in one millisecond: the counter must roll over
		id := g.next(now)
		require.Len(t, id, 36)
		require.False(t, seen[id], "duplicate at %d", i)
		require.Greater(t, id, prev, "not increasing at %d", i)
		require.Equal(t, byte('7'), id[14])
		seen[id], prev = true, id
	}
	assert.True(t, strings.HasPrefix(g.next(now.Add(time.Hour)), "018b"), "time prefix")
	assert.Greater(t, g.next(now), prev, "a clock that goes back does not reorder IDs")
}

// Append's callers share one generator: no ID twice, and each caller's
// IDs increase.
func TestIDGenConcurrent(t *testing.T) {
	var g idGen
	now := time.Unix(1700000000, 0)
	const callers, each = 8, 2000
	ids := make([][]string, callers)
	var wg sync.WaitGroup
	for c := range callers {
		wg.Go(func() {
			for range each {
				ids[c] = append(ids[c], g.next(now))
			}
		})
	}
	wg.Wait()
	seen := map[string]bool{}
	for c, list := range ids {
		for i, id := range list {
			require.False(t, seen[id], "duplicate %s", id)
			seen[id] = true
			if i > 0 {
				require.Greater(t, id, list[i-1], "caller %d not increasing at %d", c, i)
			}
		}
	}
	assert.Len(t, seen, callers*each)
}

// next returns the next ID as a string; the store itself appends IDs
// straight into its line buffer (appendNext).
func (g *idGen) next(now time.Time) string {
	var b [36]byte
	return string(g.appendNext(b[:0], now))
}
