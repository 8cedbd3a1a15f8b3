//go:build !windows

package jsonl

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/syncbreaker/syncbreaker/internal/fsx"
)

// The kill -9 test re-executes the test binary as a child (TestMain sees
// killChildEnv) that appends from several goroutines and replays at the
// same time, printing "A <id>" after each Append returned nil and
// "R <id>" before returning nil from a replay callback. The parent SIGKILLs
// it at a random moment, reopens the store, and checks that every
// acknowledged ID is still pending or was reported republished, and that
// every pending record is whole.

const (
	killChildEnv = "SYNCBREAKER_KILL_CHILD" // "work" or "hold"
	killStoreEnv = "SYNCBREAKER_KILL_STORE"
	killSeedEnv  = "SYNCBREAKER_KILL_SEED"
)

// killPayload makes a self-checking payload: JSON or, every third one,
// raw bytes with a newline (stored base64).
func killPayload(rng *rand.Rand, tag string) []byte {
	body := tag + "-" + strings.Repeat("x", rng.IntN(600))
	sum := crc32.ChecksumIEEE([]byte(body))
	if rng.IntN(3) == 0 {
		return fmt.Appendf(nil, "%s\t%d\n", body, sum)
	}
	return fmt.Appendf(nil, `[%q,%d]`, body, sum)
}

func killPayloadOK(p []byte) bool {
	var body string
	var sum uint32
	if len(p) > 0 && p[0] == '[' {
		var v [2]json.RawMessage
		if json.Unmarshal(p, &v) != nil || json.Unmarshal(v[0], &body) != nil {
			return false
		}
		n, err := strconv.ParseUint(string(v[1]), 10, 32)
		if err != nil {
			return false
		}
		sum = uint32(n)
	} else {
		b, s, ok := strings.Cut(strings.TrimSuffix(string(p), "\n"), "\t")
		n, err := strconv.ParseUint(s, 10, 32)
		if !ok || err != nil {
			return false
		}
		body, sum = b, uint32(n)
	}
	return crc32.ChecksumIEEE([]byte(body)) == sum
}

func runKillChild() int {
	path := os.Getenv(killStoreEnv)
	var out sync.Mutex
	say := func(format string, args ...any) {
		out.Lock()
		_, _ = fmt.Fprintf(os.Stdout, format+"\n", args...)
		out.Unlock()
	}
	if os.Getenv(killChildEnv) == "hold" {
		s, err := Open(path, Config{})
		if errors.Is(err, fsx.ErrLocked) {
			say("LOCKED")
			return 0
		}
		if err != nil {
			say("ERR %v", err)
			return 1
		}
		say("OPEN")
		time.Sleep(time.Hour) // until killed
		_ = s.Close()
		return 0
	}
	seed, _ := strconv.ParseUint(os.Getenv(killSeedEnv), 10, 64)
	policy := SyncPolicy(seed % 3)
	s, err := Open(path, Config{Sync: policy, SyncInterval: time.Millisecond, SegmentBytes: 16 << 10})
	if err != nil {
		say("ERR %v", err)
		return 1
	}
	say("READY")
	ctx := context.Background()
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(seed, uint64(g)))
			for i := 0; ; i++ {
				if err := s.Append(ctx, killPayload(rng, fmt.Sprintf("%d-%d-%d", seed, g, i))); err != nil {
					say("ERR %v", err)
					return
				}
				// The ID is not returned by Append; the payload tag is.
				say("A %d-%d-%d", seed, g, i)
			}
		})
	}
	rng := rand.New(rand.NewPCG(seed, 99))
	for {
		rctx, cancel := context.WithCancel(ctx)
		_, _ = s.Replay(rctx, func(ctx context.Context, r Record) error {
			switch rng.IntN(8) {
			case 0:
				cancel()
				return ctx.Err()
			case 1, 2, 3, 4:
				say("R %s", killTag(r.Payload))
				return nil
			}
			return errors.New("down")
		})
		cancel()
	}
}

func killTag(p []byte) string {
	s := strings.TrimPrefix(string(p), `["`)
	tag, _, _ := strings.Cut(s, "-x")
	tag, _, _ = strings.Cut(tag, `"`)
	tag, _, _ = strings.Cut(tag, "\t")
	return strings.TrimSuffix(tag, "-")
}

func startChild(t *testing.T, mode, path string, seed uint64) (*exec.Cmd, *bufio.Scanner) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), killChildEnv+"="+mode, killStoreEnv+"="+path, killSeedEnv+"="+strconv.FormatUint(seed, 10))
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	cmd.Stderr = os.Stderr
	require.NoError(t, cmd.Start())
	return cmd, bufio.NewScanner(stdout)
}

func TestKill9LosesNoAcknowledgedRecord(t *testing.T) {
	kills := 200
	if testing.Short() {
		kills = 40
	}
	// One store at a time: a child forked for another store would briefly
	// share this store's lock (flock follows the open file description
	// into a fork until exec closes it) and make the next child see
	// fsx.ErrLocked.
	killLoop(t, kills, 0)
}

func killLoop(t *testing.T, kills int, seedBase uint64) {
	path := filepath.Join(t.TempDir(), "p.jsonl")
	acked := map[string]bool{}
	republished := map[string]bool{}
	rng := rand.New(rand.NewPCG(7, seedBase))
	replays, repaired := 0, 0
	for k := range kills {
		cmd, lines := startChild(t, "work", path, seedBase+uint64(k+1))
		require.True(t, lines.Scan())
		require.Equal(t, "READY", lines.Text())
		done := make(chan struct{})
		var childAcked, childRepub []string
		go func() {
			defer close(done)
			for lines.Scan() {
				f := strings.Fields(lines.Text())
				switch {
				case len(f) == 2 && f[0] == "A":
					childAcked = append(childAcked, f[1])
				case len(f) == 2 && f[0] == "R":
					childRepub = append(childRepub, f[1])
				case len(f) > 0 && f[0] == "ERR":
					t.Errorf("child: %s", lines.Text())
				}
			}
		}()
		time.Sleep(time.Duration(rng.IntN(12000)) * time.Microsecond)
		require.NoError(t, cmd.Process.Kill())
		_ = cmd.Wait()
		<-done
		for _, id := range childAcked {
			acked[id] = true
		}
		for _, id := range childRepub {
			republished[id] = true
		}

		s, err := Open(path, Config{})
		require.NoError(t, err, "kill %d", k)
		if !s.RepairReport().Clean() {
			repaired++
		}
		pending := map[string]bool{}
		layout, err := Files(path)
		require.NoError(t, err)
		for _, f := range append(layout.Segments, layout.Active) {
			require.NoError(t, ScanFile(f, ScanConfig{}, func(e ScanEntry) error {
				require.Equal(t, ProblemNone, e.Problem, "kill %d: %s line %d after repair", k, filepath.Base(f), e.Line)
				require.True(t, killPayloadOK(e.Record.Payload), "kill %d: payload intact", k)
				pending[killTag(e.Record.Payload)] = true
				return nil
			}))
		}
		for id := range acked {
			require.True(t, pending[id] || republished[id], "kill %d: acknowledged %s lost", k, id)
		}
		if len(childRepub) > 0 {
			replays++
		}
		// Forget what is settled, so the maps stay small.
		for id := range acked {
			if !pending[id] {
				delete(acked, id)
			}
		}
		if len(pending) > 150 { // keep the store small so each round stays fast
			_, err := s.Replay(context.Background(), func(_ context.Context, r Record) error {
				delete(acked, killTag(r.Payload))
				return nil
			})
			require.NoError(t, err)
		}
		require.NoError(t, s.Close())
	}
	t.Logf("%d kills, %d with replays running, %d opens repaired something, %d acked records pending", kills, replays, repaired, len(acked))
}

func TestLockHeldByAnotherProcess(t *testing.T) {
	path := filepath.Join(t.TempDir(), "p.jsonl")
	s, err := Open(path, Config{})
	require.NoError(t, err)
	cmd, lines := startChild(t, "hold", path, 0)
	require.True(t, lines.Scan())
	assert.Equal(t, "LOCKED", lines.Text(), "a second process is refused")
	_ = cmd.Wait()
	require.NoError(t, s.Close())

	cmd, lines = startChild(t, "hold", path, 0)
	require.True(t, lines.Scan())
	require.Equal(t, "OPEN", lines.Text())
	_, err = Open(path, Config{})
	require.ErrorIs(t, err, fsx.ErrLocked, "held by the child")
	require.NoError(t, cmd.Process.Kill())
	_ = cmd.Wait()
	s, err = Open(path, Config{})
	require.NoError(t, err, "the OS released the killed owner's lock")
	require.NoError(t, s.Close())
}
