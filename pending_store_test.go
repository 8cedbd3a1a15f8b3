package syncbreaker_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/syncbreaker/syncbreaker"
)

// storeFactory opens a fresh, empty store for one subtest. For a durable
// store, reopen opens the same store again once the caller has closed the
// previous one; it is nil for stores that keep nothing across a Close. The
// factory closes whatever it opened when the test ends.
type storeFactory func(t *testing.T) (store syncbreaker.PendingStore, reopen func() syncbreaker.PendingStore)

func TestPendingStoreConformance(t *testing.T) {
	jsonl := func(cfg syncbreaker.StoreConfig) storeFactory {
		return func(t *testing.T) (syncbreaker.PendingStore, func() syncbreaker.PendingStore) {
			path := filepath.Join(t.TempDir(), "pending.jsonl")
			open := func() syncbreaker.PendingStore {
				t.Helper()
				s, err := syncbreaker.OpenJSONLStore(path, cfg)
				require.NoError(t, err)
				t.Cleanup(func() { assert.NoError(t, s.Close()) })
				return s
			}
			return open(), open
		}
	}
	t.Run("jsonl", func(t *testing.T) {
		testPendingStore(t, jsonl(syncbreaker.StoreConfig{}))
	})
	t.Run("jsonl-sync-never", func(t *testing.T) {
		testPendingStore(t, jsonl(syncbreaker.StoreConfig{Sync: syncbreaker.SyncNever}))
	})
	t.Run("memstore", func(t *testing.T) {
		testPendingStore(t, func(*testing.T) (syncbreaker.PendingStore, func() syncbreaker.PendingStore) {
			return &memStore{}, nil
		})
	})
}

var (
	// errConfDeliver is an ordinary failed delivery: Attempts+1, kept in place.
	errConfDeliver = errors.New("conformance: delivery failed")
	// errConfPeek keeps a record exactly as it was (storeContents).
	errConfPeek = fmt.Errorf("conformance: peek: %w", syncbreaker.ErrNotAttempted)
)

// testPendingStore holds one PendingStore implementation to the promises
// documented on PendingStore and Record.
func testPendingStore(t *testing.T, open storeFactory) {
	t.Run("empty", func(t *testing.T) { confEmpty(t, open) })
	t.Run("order", func(t *testing.T) { confOrder(t, open) })
	t.Run("byte-exact", func(t *testing.T) { confByteExact(t, open) })
	t.Run("empty-payload", func(t *testing.T) { confEmptyPayload(t, open) })
	t.Run("append-copies", func(t *testing.T) { confAppendCopies(t, open) })
	t.Run("callback-keeps-payload", func(t *testing.T) { confCallbackKeeps(t, open) })
	t.Run("callback-modifies-payload", func(t *testing.T) {
		t.Run("failed-record", func(t *testing.T) { confCallbackModifies(t, open, errConfDeliver, 1) })
		t.Run("not-attempted-record", func(t *testing.T) { confCallbackModifies(t, open, errConfPeek, 0) })
	})
	t.Run("stable-ids", func(t *testing.T) { confStableIDs(t, open) })
	t.Run("outcomes", func(t *testing.T) { confOutcomes(t, open) })
	t.Run("result-counts", func(t *testing.T) { confResultCounts(t, open) })
	t.Run("append-during-replay", func(t *testing.T) { confAppendDuringReplay(t, open) })
	t.Run("append-racing-replay", func(t *testing.T) { confAppendRacingReplay(t, open) })
	t.Run("concurrent-replays", func(t *testing.T) { confConcurrentReplays(t, open) })
	t.Run("cancel", func(t *testing.T) { confCancel(t, open) })
	t.Run("close", func(t *testing.T) { confClose(t, open) })
	t.Run("close-concurrent", func(t *testing.T) { confCloseConcurrent(t, open) })
}

// --- helpers ---

func appendPayloads(t *testing.T, s syncbreaker.PendingStore, payloads ...[]byte) {
	t.Helper()
	for i, p := range payloads {
		require.NoError(t, s.Append(t.Context(), p), "Append #%d (%d bytes)", i, len(p))
	}
}

func appendStrings(t *testing.T, s syncbreaker.PendingStore, payloads ...string) {
	t.Helper()
	for _, p := range payloads {
		appendPayloads(t, s, []byte(p))
	}
}

func numbered(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s-%03d", prefix, i)
	}
	return out
}

// storeContents returns what is pending, in replay order, through a Replay
// that marks every record not attempted, and checks that this Replay
// changed nothing.
func storeContents(t *testing.T, s syncbreaker.PendingStore) []syncbreaker.Record {
	t.Helper()
	var recs []syncbreaker.Record
	res, err := s.Replay(t.Context(), func(_ context.Context, rec syncbreaker.Record) error {
		recs = append(recs, rec)
		return errConfPeek
	})
	require.NoError(t, err)
	require.Equal(t, syncbreaker.ReplayResult{Skipped: len(recs), Remaining: len(recs)}, res,
		"a Replay where fn marks every record ErrNotAttempted")
	return recs
}

func payloadStrings(recs []syncbreaker.Record) []string {
	out := make([]string, 0, len(recs))
	for _, r := range recs {
		out = append(out, string(r.Payload))
	}
	return out
}

func recordIDs(recs []syncbreaker.Record) []string {
	out := make([]string, 0, len(recs))
	for _, r := range recs {
		out = append(out, r.ID)
	}
	return out
}

func recordAttempts(recs []syncbreaker.Record) []int {
	out := make([]int, 0, len(recs))
	for _, r := range recs {
		out = append(out, r.Attempts)
	}
	return out
}

// requireSameRecords checks that got are want, field by field: the same
// records, untouched.
func requireSameRecords(t *testing.T, want, got []syncbreaker.Record, what string) {
	t.Helper()
	require.Equal(t, recordIDs(want), recordIDs(got), "%s: IDs", what)
	require.Equal(t, recordAttempts(want), recordAttempts(got), "%s: attempts", what)
	for i := range want {
		assert.True(t, want[i].EnqueuedAt.Equal(got[i].EnqueuedAt), "%s: record %d EnqueuedAt %v, was %v",
			what, i, got[i].EnqueuedAt, want[i].EnqueuedAt)
		assertPayload(t, want[i].Payload, got[i].Payload, fmt.Sprintf("%s: record %d", what, i))
	}
}

// assertPayload compares payloads without printing a megabyte on failure.
func assertPayload(t *testing.T, want, got []byte, what string) bool {
	t.Helper()
	if bytes.Equal(want, got) {
		return true
	}
	at := 0
	for at < len(want) && at < len(got) && want[at] == got[at] {
		at++
	}
	t.Errorf("%s: payload differs: got %d bytes, want %d; first difference at byte %d (got %q, want %q)",
		what, len(got), len(want), at, excerpt(got, at), excerpt(want, at))
	return false
}

func excerpt(b []byte, at int) []byte {
	end := min(at+16, len(b))
	if at > end {
		return nil
	}
	return b[at:end]
}

// checkCounts checks that a Replay of before records, with no Append
// running meanwhile, accounted for every one of them exactly once.
func checkCounts(t *testing.T, res syncbreaker.ReplayResult, before int) {
	t.Helper()
	assert.Equal(t, before, res.Republished+res.Failed+res.Skipped+res.DeadLettered,
		"Republished+Failed+Skipped+DeadLettered must cover the %d records pending before (%+v)", before, res)
	assert.Equal(t, before-res.Republished-res.DeadLettered, res.Remaining,
		"Remaining must be what was pending minus what left (%+v)", res)
	assert.Equal(t, res.Failed+res.Skipped, res.Remaining, "Remaining must be Failed+Skipped (%+v)", res)
}

// reopenAfterClose closes s and opens the same store again.
func reopenAfterClose(t *testing.T, s syncbreaker.PendingStore, reopen func() syncbreaker.PendingStore) syncbreaker.PendingStore {
	t.Helper()
	require.NoError(t, s.Close())
	return reopen()
}

// --- subtests ---

func confEmpty(t *testing.T, open storeFactory) {
	s, _ := open(t)
	res, err := s.Replay(t.Context(), func(context.Context, syncbreaker.Record) error {
		t.Error("fn called on an empty store")
		return nil
	})
	require.NoError(t, err)
	assert.Equal(t, syncbreaker.ReplayResult{}, res)
}

func confOrder(t *testing.T, open storeFactory) {
	s, reopen := open(t)
	want := numbered("order", 50)
	appendStrings(t, s, want...)

	assert.Equal(t, want, payloadStrings(storeContents(t, s)), "oldest first, in append order")
	if reopen != nil {
		s = reopenAfterClose(t, s, reopen)
		assert.Equal(t, want, payloadStrings(storeContents(t, s)), "after a reopen")
	}

	var got []string
	res, err := s.Replay(t.Context(), func(_ context.Context, rec syncbreaker.Record) error {
		got = append(got, string(rec.Payload))
		return nil
	})
	require.NoError(t, err)
	assert.Equal(t, want, got, "delivered oldest first, in append order")
	assert.Equal(t, syncbreaker.ReplayResult{Republished: len(want)}, res)
	assert.Empty(t, storeContents(t, s), "delivered records are removed")
}

// confPayloads are payloads a store must give back byte-exact.
func confPayloads() []struct {
	name string
	p    []byte
} {
	rng := rand.New(rand.NewPCG(1, 2))
	random := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	all256 := make([]byte, 256)
	for i := range all256 {
		all256[i] = byte(i)
	}
	bigJSON := []byte(`{"cmd":"` + strings.Repeat("echo hello; ", (1<<20)/12) + `"}`)
	return []struct {
		name string
		p    []byte
	}{
		{"json", []byte(`{"cmd":"ls -la","ts":1712345678,"nested":{"a":[1,2,3],"b":null}}`)},
		{"json-inner-spaces", []byte(`{ "b" : 2 ,  "a" : [ 1 , 2 ] }`)},
		{"json-outer-whitespace", []byte(" \t{\"a\":1}\r\n")},
		{"json-crlf-inside", []byte("{\"a\":\r\n1,\n\"b\":2}")},
		{"json-escapes", []byte(`"line\nbreak \u2028 \"quoted\" \\ \/ \u0000"`)},
		{"json-raw-unicode", []byte(`{"é":"日本語","emoji":"😀"}`)},
		{"json-numbers", []byte(`[123456789012345678901234567890.5e-3,-0,1E+400,0.10]`)},
		{"json-literal-null", []byte(`null`)},
		{"json-literal-zero", []byte(`0`)},
		{"json-invalid-utf8-in-string", []byte("\"\xff\xfe bad\"")},
		{"json-deep-10000", []byte(strings.Repeat("[", 10000) + strings.Repeat("]", 10000))},
		{"json-deep-10001", []byte(strings.Repeat("[", 10001) + strings.Repeat("]", 10001))},
		{"looks-like-an-envelope", []byte(`{"_v":1,"id":"x","t":"2020-01-01T00:00:00Z","a":0,"p":1,"c":"00000000"}`)},
		{"binary-nul-newlines", []byte("a\x00b\nc\r\n\x00\x00\n{\"x\":1}\n\xff")},
		{"all-256-bytes", all256},
		{"one-byte", []byte("x")},
		{"one-newline", []byte("\n")},
		{"one-nul", []byte{0}},
		{"one-space", []byte(" ")},
		{"one-quote", []byte(`"`)},
		{"binary-1MiB", random(1<<20 + 17)},
		{"json-1MiB", bigJSON},
		{"after-the-big-ones", []byte("small")},
	}
}

func confByteExact(t *testing.T, open storeFactory) {
	s, reopen := open(t)
	cases := confPayloads()
	for _, c := range cases {
		appendPayloads(t, s, c.p)
	}
	check := func(recs []syncbreaker.Record, what string) {
		t.Helper()
		require.Len(t, recs, len(cases), what)
		for i, c := range cases {
			assertPayload(t, c.p, recs[i].Payload, what+": "+c.name)
		}
	}
	check(storeContents(t, s), "first replay")
	if reopen != nil {
		s = reopenAfterClose(t, s, reopen)
		check(storeContents(t, s), "after a reopen")
	}
	var delivered []syncbreaker.Record
	res, err := s.Replay(t.Context(), func(_ context.Context, rec syncbreaker.Record) error {
		delivered = append(delivered, rec)
		return nil
	})
	require.NoError(t, err)
	assert.Equal(t, syncbreaker.ReplayResult{Republished: len(cases)}, res)
	check(delivered, "delivering replay")
}

func confEmptyPayload(t *testing.T, open storeFactory) {
	s, reopen := open(t)
	appendStrings(t, s, "before")
	require.NoError(t, s.Append(t.Context(), []byte{}), "Append of an empty payload")
	require.NoError(t, s.Append(t.Context(), nil), "Append of a nil payload")
	appendStrings(t, s, "after")
	want := []string{"before", "", "", "after"}
	assert.Equal(t, want, payloadStrings(storeContents(t, s)))
	if reopen != nil {
		s = reopenAfterClose(t, s, reopen)
		assert.Equal(t, want, payloadStrings(storeContents(t, s)), "after a reopen")
	}
}

// confAppendCopies: the caller may reuse its buffer once Append returns.
func confAppendCopies(t *testing.T, open storeFactory) {
	s, _ := open(t)
	buf := []byte(`{"n":0}`)
	require.NoError(t, s.Append(t.Context(), buf))
	copy(buf, `{"n":1}`)
	require.NoError(t, s.Append(t.Context(), buf))
	copy(buf, `XXXXXXX`)
	assert.Equal(t, []string{`{"n":0}`, `{"n":1}`}, payloadStrings(storeContents(t, s)))
}

// keepPayloads are payloads of mixed sizes and kinds, large ones before
// small ones, so that a reused read buffer would show.
func keepPayloads(n int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		switch i % 4 {
		case 0:
			out[i] = bytes.Repeat([]byte{byte('a' + i%26)}, 70_000+i)
		case 1:
			out[i] = fmt.Appendf(nil, `{"i":%d}`, i)
		case 2:
			out[i] = fmt.Appendf(nil, "bin\x00%d\n\xff", i)
		default:
			out[i] = fmt.Appendf(nil, "%d", i)
		}
	}
	return out
}

func confCallbackKeeps(t *testing.T, open storeFactory) {
	s, _ := open(t)
	want := keepPayloads(40)
	appendPayloads(t, s, want...)

	// One Replay that fails every other record, then one that delivers
	// the rest: fn keeps every payload it gets, without copying.
	for round, outcome := range []func(i int) error{
		func(i int) error {
			if i%2 == 1 {
				return errConfDeliver
			}
			return nil
		},
		func(int) error { return nil },
	} {
		var kept [][]byte
		var keptRecs []syncbreaker.Record
		i := 0
		_, err := s.Replay(t.Context(), func(_ context.Context, rec syncbreaker.Record) error {
			kept = append(kept, rec.Payload)
			keptRecs = append(keptRecs, rec)
			err := outcome(i)
			i++
			return err
		})
		require.NoError(t, err)
		wantRound := want
		if round == 1 {
			wantRound = nil
			for j := 1; j < len(want); j += 2 {
				wantRound = append(wantRound, want[j])
			}
		}
		require.Len(t, kept, len(wantRound), "round %d", round)
		for j := range wantRound {
			assertPayload(t, wantRound[j], kept[j], fmt.Sprintf("round %d: payload %d kept by fn, after Replay returned", round, j))
			assertPayload(t, wantRound[j], keptRecs[j].Payload, fmt.Sprintf("round %d: record %d kept by fn, after Replay returned", round, j))
		}
	}
	assert.Empty(t, storeContents(t, s))
}

// confCallbackModifies: fn scribbles over every payload it gets, returns
// outcome, and scribbles again after Replay returned; the records stay,
// with their original bytes.
func confCallbackModifies(t *testing.T, open storeFactory, outcome error, attempts int) {
	s, reopen := open(t)
	want := keepPayloads(12)
	appendPayloads(t, s, want...)
	before := storeContents(t, s)

	var kept [][]byte
	res, err := s.Replay(t.Context(), func(_ context.Context, rec syncbreaker.Record) error {
		for j := range rec.Payload {
			rec.Payload[j] ^= 0xff
		}
		kept = append(kept, rec.Payload)
		return outcome
	})
	require.NoError(t, err)
	require.Len(t, kept, len(want))
	assert.Equal(t, len(want), res.Remaining)
	for _, p := range kept {
		for j := range p {
			p[j] = 'X'
		}
	}
	check := func(s syncbreaker.PendingStore, what string) {
		t.Helper()
		after := storeContents(t, s)
		require.Len(t, after, len(want), what)
		for j := range want {
			assertPayload(t, want[j], after[j].Payload, fmt.Sprintf("%s: record %d", what, j))
			assert.Equal(t, before[j].ID, after[j].ID, what)
			assert.Equal(t, attempts, after[j].Attempts, what)
		}
	}
	check(s, "after fn modified the payloads")
	if reopen != nil {
		check(reopenAfterClose(t, s, reopen), "after a reopen")
	}
}

func confStableIDs(t *testing.T, open storeFactory) {
	s, reopen := open(t)
	start := time.Now()
	// Four concurrent appenders: IDs must still be unique, and each
	// appender's records must come back in its own order.
	const writers, each = 4, 25
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				if err := s.Append(t.Context(), fmt.Appendf(nil, "w%d-%03d", w, i)); err != nil {
					t.Errorf("Append: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	end := time.Now()

	first := storeContents(t, s)
	require.Len(t, first, writers*each)
	seen := map[string]bool{}
	next := make([]int, writers)
	for _, r := range first {
		assert.NotEmpty(t, r.ID, "record %q has no ID", r.Payload)
		assert.False(t, seen[r.ID], "ID %q given twice", r.ID)
		seen[r.ID] = true
		assert.False(t, r.EnqueuedAt.IsZero(), "record %q has no EnqueuedAt", r.Payload)
		assert.False(t, r.EnqueuedAt.Before(start.Add(-time.Second)) || r.EnqueuedAt.After(end.Add(time.Second)),
			"EnqueuedAt %v outside the Append calls [%v, %v]", r.EnqueuedAt, start, end)
		assert.Zero(t, r.Attempts)
		var w, i int
		_, err := fmt.Sscanf(string(r.Payload), "w%d-%d", &w, &i)
		require.NoError(t, err)
		assert.Equal(t, next[w], i, "writer %d's records out of order", w)
		next[w] = i + 1
	}

	// Two Replays where fn fails every record: same IDs, same order,
	// one more attempt each time.
	failAll := func() []syncbreaker.Record {
		var got []syncbreaker.Record
		res, err := s.Replay(t.Context(), func(_ context.Context, rec syncbreaker.Record) error {
			got = append(got, rec)
			return errConfDeliver
		})
		require.NoError(t, err)
		assert.Equal(t, syncbreaker.ReplayResult{Failed: len(first), Remaining: len(first)}, res)
		return got
	}
	for round := 1; round <= 2; round++ {
		got := failAll()
		want := make([]syncbreaker.Record, len(first))
		copy(want, first)
		for i := range want {
			want[i].Attempts = round - 1 // what fn saw: attempts before this failure
		}
		requireSameRecords(t, want, got, fmt.Sprintf("failing replay %d", round))
	}
	after := storeContents(t, s)
	want := make([]syncbreaker.Record, len(first))
	copy(want, first)
	for i := range want {
		want[i].Attempts = 2
	}
	requireSameRecords(t, want, after, "after two failing replays")

	if reopen != nil {
		s = reopenAfterClose(t, s, reopen)
		requireSameRecords(t, want, storeContents(t, s), "after a reopen")
	}

	// Delivering the first half leaves the others with their IDs.
	n := 0
	_, err := s.Replay(t.Context(), func(context.Context, syncbreaker.Record) error {
		n++
		if n <= len(want)/2 {
			return nil
		}
		return errConfPeek
	})
	require.NoError(t, err)
	requireSameRecords(t, want[len(want)/2:], storeContents(t, s), "after delivering the first half")
}

// confOutcome is what fn returns for one record, and what must follow.
type confOutcome struct {
	name    string
	err     error
	removed bool // delivered or dead-lettered
	counted bool // Attempts+1
}

func confOutcomes(t *testing.T, open storeFactory) {
	s, reopen := open(t)
	outcomes := []confOutcome{
		{"nil", nil, true, false},
		{"plain-error", errConfDeliver, false, true},
		{"wraps-ErrNotAttempted", fmt.Errorf("wrapped: %w", syncbreaker.ErrNotAttempted), false, false},
		{"ErrOpen", syncbreaker.ErrOpen, false, false},
		{"Permanent", syncbreaker.Permanent(errors.New("rejected as malformed")), true, false},
		{"ErrSettleTimeout", syncbreaker.ErrSettleTimeout, false, false},
		{"nil-again", nil, true, false},
		{"wraps-ErrOpen", fmt.Errorf("breaker: %w", syncbreaker.ErrOpen), false, false},
		{"wrapped-plain-error", fmt.Errorf("post: %w", errConfDeliver), false, true},
		{"Permanent-wrapped", fmt.Errorf("handler: %w", syncbreaker.Permanent(errors.New("bad"))), true, false},
		{"last-nil", nil, true, false},
	}
	for _, o := range outcomes {
		appendStrings(t, s, "outcome-"+o.name)
	}
	before := storeContents(t, s)

	i := 0
	res, err := s.Replay(t.Context(), func(_ context.Context, rec syncbreaker.Record) error {
		require.Less(t, i, len(outcomes))
		assert.Equal(t, "outcome-"+outcomes[i].name, string(rec.Payload))
		err := outcomes[i].err
		i++
		return err
	})
	require.NoError(t, err)
	assert.Equal(t, syncbreaker.ReplayResult{
		Republished: 3, Failed: 2, Skipped: 4, DeadLettered: 2, Remaining: 6,
	}, res)
	checkCounts(t, res, len(outcomes))

	var want []syncbreaker.Record
	for j, o := range outcomes {
		if o.removed {
			continue
		}
		r := before[j]
		if o.counted {
			r.Attempts++
		}
		want = append(want, r)
	}
	requireSameRecords(t, want, storeContents(t, s), "after the mixed replay")

	// A second round: everything fails; the order still holds.
	res, err = s.Replay(t.Context(), func(context.Context, syncbreaker.Record) error { return errConfDeliver })
	require.NoError(t, err)
	assert.Equal(t, syncbreaker.ReplayResult{Failed: len(want), Remaining: len(want)}, res)
	for j := range want {
		want[j].Attempts++
	}
	requireSameRecords(t, want, storeContents(t, s), "after a failing replay")
	if reopen != nil {
		s = reopenAfterClose(t, s, reopen)
		requireSameRecords(t, want, storeContents(t, s), "after a reopen")
	}
}

// confResultCounts checks that ReplayResult accounts for every record,
// also when earlier replays left records in a different place (for a
// segmented store: an older segment) than later appends.
func confResultCounts(t *testing.T, open storeFactory) {
	layered := func(t *testing.T) syncbreaker.PendingStore {
		s, _ := open(t)
		appendStrings(t, s, numbered("old", 4)...)
		res, err := s.Replay(t.Context(), func(context.Context, syncbreaker.Record) error { return errConfDeliver })
		require.NoError(t, err)
		checkCounts(t, res, 4)
		appendStrings(t, s, numbered("new", 4)...)
		return s
	}
	rotating := func(i int) error {
		return []error{nil, errConfDeliver, errConfPeek, syncbreaker.Permanent(errConfDeliver)}[i%4]
	}
	t.Run("mixed", func(t *testing.T) {
		s := layered(t)
		i := 0
		res, err := s.Replay(t.Context(), func(context.Context, syncbreaker.Record) error {
			i++
			return rotating(i - 1)
		})
		require.NoError(t, err)
		checkCounts(t, res, 8)
		assert.Equal(t, syncbreaker.ReplayResult{Republished: 2, Failed: 2, Skipped: 2, DeadLettered: 2, Remaining: 4}, res)
		assert.Len(t, storeContents(t, s), 4)
	})
	cancelAt := func(t *testing.T, k int) {
		s := layered(t)
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		i := 0
		res, err := s.Replay(ctx, func(ctx context.Context, _ syncbreaker.Record) error {
			i++
			if i-1 == k {
				cancel()
				return ctx.Err()
			}
			return nil
		})
		require.ErrorIs(t, err, context.Canceled)
		assert.Equal(t, k, res.Republished)
		checkCounts(t, res, 8)
		assert.Len(t, storeContents(t, s), 8-k)
	}
	t.Run("cancel-in-older-records", func(t *testing.T) { cancelAt(t, 1) })
	t.Run("cancel-in-newer-records", func(t *testing.T) { cancelAt(t, 5) })
	t.Run("cancelled-before", func(t *testing.T) {
		s := layered(t)
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		res, err := s.Replay(ctx, func(context.Context, syncbreaker.Record) error {
			t.Error("fn called with a cancelled ctx")
			return nil
		})
		require.ErrorIs(t, err, context.Canceled)
		checkCounts(t, res, 8)
		assert.Len(t, storeContents(t, s), 8)
	})
}

func confAppendDuringReplay(t *testing.T, open storeFactory) {
	s, reopen := open(t)
	appendStrings(t, s, "old-0", "old-1", "old-2")
	before := storeContents(t, s)

	var (
		wg   sync.WaitGroup
		seen []string
	)
	res, err := s.Replay(t.Context(), func(ctx context.Context, rec syncbreaker.Record) error {
		seen = append(seen, string(rec.Payload))
		switch string(rec.Payload) {
		case "old-1":
			// An Append from inside fn, and one from another goroutine
			// that finishes while this Replay is still running.
			assert.NoError(t, s.Append(ctx, []byte("during-inside")))
			done := make(chan error, 1)
			wg.Go(func() { done <- s.Append(t.Context(), []byte("during-goroutine")) })
			assert.NoError(t, <-done)
			return errConfDeliver
		case "old-2":
			// The handler spilled it again: a new record, the old one goes.
			assert.NoError(t, s.Append(ctx, rec.Payload))
			return nil
		}
		return errConfDeliver
	})
	wg.Wait()
	require.NoError(t, err)
	assert.Equal(t, []string{"old-0", "old-1", "old-2"}, seen,
		"records appended during a Replay wait for the next one (a respill inside fn must not loop)")
	assert.Equal(t, syncbreaker.ReplayResult{Republished: 1, Failed: 2, Remaining: 5}, res)

	check := func(s syncbreaker.PendingStore, what string) {
		t.Helper()
		after := storeContents(t, s)
		require.Equal(t, []string{"old-0", "old-1", "during-inside", "during-goroutine", "old-2"}, payloadStrings(after), what)
		assert.Equal(t, []int{1, 1, 0, 0, 0}, recordAttempts(after), what)
		assert.Equal(t, recordIDs(before[:2]), recordIDs(after[:2]), what)
		assert.NotEqual(t, before[2].ID, after[4].ID, "%s: a respilled payload is a new record", what)
	}
	check(s, "next replay")
	if reopen != nil {
		check(reopenAfterClose(t, s, reopen), "after a reopen")
	}
}

// confAppendRacingReplay: appends racing with a Replay, with no
// synchronisation with it, are each delivered exactly once, in order,
// by this Replay or a later one.
func confAppendRacingReplay(t *testing.T, open storeFactory) {
	s, _ := open(t)
	olds, news := numbered("old", 20), numbered("new", 60)
	appendStrings(t, s, olds...)

	var (
		wg      sync.WaitGroup
		once    sync.Once
		started = make(chan struct{})
	)
	start := func() { once.Do(func() { close(started) }) }
	wg.Go(func() {
		<-started
		for _, p := range news {
			if err := s.Append(t.Context(), []byte(p)); err != nil {
				t.Errorf("Append: %v", err)
				return
			}
		}
	})
	var delivered []string
	deliver := func(_ context.Context, rec syncbreaker.Record) error {
		start()
		delivered = append(delivered, string(rec.Payload))
		runtime.Gosched()
		return nil
	}
	_, err := s.Replay(t.Context(), deliver)
	start()
	wg.Wait()
	require.NoError(t, err)
	for range 3 {
		res, err := s.Replay(t.Context(), deliver)
		require.NoError(t, err)
		if res.Remaining == 0 {
			break
		}
	}
	assert.Equal(t, append(olds, news...), delivered, "every record delivered once, oldest first")
	assert.Empty(t, storeContents(t, s))
}

// confConcurrentReplays: the store is safe for concurrent use, Replay
// included: Replays running at once with Appends deliver every record
// exactly once.
func confConcurrentReplays(t *testing.T, open storeFactory) {
	s, _ := open(t)
	olds, news := numbered("old", 40), numbered("new", 40)
	appendStrings(t, s, olds...)

	var (
		mu        sync.Mutex
		delivered = map[string]int{}
		total     int
		wg        sync.WaitGroup
		gate      = make(chan struct{})
	)
	deliver := func(_ context.Context, rec syncbreaker.Record) error {
		mu.Lock()
		delivered[string(rec.Payload)]++
		mu.Unlock()
		runtime.Gosched()
		return nil
	}
	for range 3 {
		wg.Go(func() {
			<-gate
			res, err := s.Replay(t.Context(), deliver)
			assert.NoError(t, err)
			mu.Lock()
			total += res.Republished
			mu.Unlock()
		})
	}
	wg.Go(func() {
		<-gate
		for _, p := range news {
			if err := s.Append(t.Context(), []byte(p)); err != nil {
				t.Errorf("Append: %v", err)
				return
			}
		}
	})
	close(gate)
	wg.Wait()
	res, err := s.Replay(t.Context(), deliver)
	require.NoError(t, err)
	total += res.Republished
	assert.Zero(t, res.Remaining)

	for _, p := range append(olds, news...) {
		assert.Equal(t, 1, delivered[p], "record %s delivered %d times", p, delivered[p])
	}
	assert.Equal(t, len(olds)+len(news), total, "sum of Republished")
	assert.Empty(t, storeContents(t, s))
}

func confCancel(t *testing.T, open storeFactory) {
	const n, k = 6, 2
	variants := []struct {
		name     string
		ret      func(ctx context.Context) error
		kSettled bool // fn delivered record k before returning
	}{
		{"fn-returns-ctx-err", func(ctx context.Context) error { return ctx.Err() }, false},
		{"fn-returns-plain-error", func(context.Context) error { return errConfDeliver }, false},
		{"fn-returns-wrapped-ctx-err", func(ctx context.Context) error { return fmt.Errorf("publish: %w", ctx.Err()) }, false},
		{"fn-returns-nil", func(context.Context) error { return nil }, true},
	}
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			s, reopen := open(t)
			appendStrings(t, s, numbered("cancel", n)...)
			before := storeContents(t, s)
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			i := 0
			res, err := s.Replay(ctx, func(ctx context.Context, rec syncbreaker.Record) error {
				defer func() { i++ }()
				switch {
				case i < k:
					return nil
				case i == k:
					cancel()
					return v.ret(ctx)
				}
				t.Errorf("fn called for record %d after ctx ended", i)
				return nil
			})
			require.ErrorIs(t, err, context.Canceled, "Replay returns ctx.Err()")
			first := k
			if v.kSettled {
				first++
			}
			assert.Equal(t, first, res.Republished)
			assert.Zero(t, res.Failed, "no attempt counted after ctx ended")
			assert.Zero(t, res.DeadLettered)
			assert.Equal(t, n-first, res.Remaining)
			requireSameRecords(t, before[first:], storeContents(t, s), "after the cancelled replay")
			if reopen != nil {
				requireSameRecords(t, before[first:], storeContents(t, reopenAfterClose(t, s, reopen)), "after a reopen")
			}
		})
	}
	t.Run("ctx-already-done", func(t *testing.T) {
		s, _ := open(t)
		appendStrings(t, s, numbered("done", 3)...)
		before := storeContents(t, s)
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		// Repeated: an implementation may choose among ready cases at random.
		for i := range 20 {
			res, err := s.Replay(ctx, func(context.Context, syncbreaker.Record) error {
				t.Error("fn called with an ended ctx")
				return nil
			})
			require.ErrorIs(t, err, context.Canceled, "call %d", i)
			assert.Equal(t, len(before), res.Remaining, "call %d: Remaining (%+v)", i, res)
			assert.Zero(t, res.Republished+res.Failed+res.DeadLettered, "call %d", i)
		}
		requireSameRecords(t, before, storeContents(t, s), "after Replays with an ended ctx")
	})
	t.Run("after-failures", func(t *testing.T) {
		// Records failed by an earlier replay, then newer ones; cancel
		// among the newer ones.
		s, _ := open(t)
		appendStrings(t, s, "a", "b", "c")
		_, err := s.Replay(t.Context(), func(context.Context, syncbreaker.Record) error { return errConfDeliver })
		require.NoError(t, err)
		appendStrings(t, s, "d", "e", "f")
		before := storeContents(t, s)
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		res, err := s.Replay(ctx, func(ctx context.Context, rec syncbreaker.Record) error {
			switch string(rec.Payload) {
			case "a", "c":
				return nil
			case "b":
				return errConfDeliver
			case "d":
				cancel()
				return ctx.Err()
			}
			t.Errorf("fn called for %q after ctx ended", rec.Payload)
			return nil
		})
		require.ErrorIs(t, err, context.Canceled)
		assert.Equal(t, 2, res.Republished)
		assert.Equal(t, 1, res.Failed)
		assert.Equal(t, 4, res.Remaining)
		want := []syncbreaker.Record{before[1], before[3], before[4], before[5]}
		want[0].Attempts++
		requireSameRecords(t, want, storeContents(t, s), "after the cancelled replay")
	})
}

func confClose(t *testing.T, open storeFactory) {
	s, reopen := open(t)
	appendStrings(t, s, "kept-0", "kept-1")
	before := storeContents(t, s)
	require.NoError(t, s.Close())
	require.NoError(t, s.Close(), "a second Close")
	err := s.Append(t.Context(), []byte("after-close"))
	require.Error(t, err, "Append after Close")
	assert.ErrorIs(t, err, syncbreaker.ErrStoreClosed)
	if reopen != nil {
		requireSameRecords(t, before, storeContents(t, reopen()), "after a reopen")
	}
}

func confCloseConcurrent(t *testing.T, open storeFactory) {
	s, _ := open(t)
	appendStrings(t, s, "x")
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() { assert.NoError(t, s.Close()) })
	}
	wg.Wait()
	assert.ErrorIs(t, s.Append(t.Context(), []byte("y")), syncbreaker.ErrStoreClosed)
}
