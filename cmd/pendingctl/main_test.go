package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/syncbreaker/syncbreaker"
)

// binPath is the pendingctl binary TestMain builds: the tests run the
// real command, as a user would.
var binPath string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "pendingctl-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binPath = filepath.Join(dir, "pendingctl")
	if runtime.GOOS == "windows" {
		binPath += ".exe"
	}
	build := exec.Command("go", "build", "-o", binPath, ".")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building pendingctl: %v\n%s", err, out)
		_ = os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: %v\n", err)
			code = 1
		}
	}
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// forkMu keeps a store's Close from overlapping the start of a child
// process. A child forked while the test process holds a store's lock file
// shares its flock until it execs (the descriptor is close-on-exec), so a
// Close in that window would not release the lock, and the next open (in
// this process or in the child pendingctl) would fail with ErrStoreLocked.
// Starts take it shared, closes exclusively.
var forkMu sync.RWMutex

// closeStore closes s once no child process is being started.
func closeStore(t *testing.T, s *syncbreaker.JSONLStore) {
	t.Helper()
	forkMu.Lock()
	defer forkMu.Unlock()
	require.NoError(t, s.Close())
}

// result is one run of the binary.
type result struct {
	stdout, stderr string
	code           int
}

// pendingctl runs the binary with args and returns what it printed and
// its exit code.
func pendingctl(t *testing.T, args ...string) result {
	t.Helper()
	return runPendingctl(t, 2*time.Minute, args...)
}

// runPendingctl runs the binary with args and fails the test if it has not
// exited within timeout (it is then killed).
func runPendingctl(t *testing.T, timeout time.Duration, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, binPath, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	forkMu.RLock()
	err := cmd.Start()
	forkMu.RUnlock()
	if err == nil {
		err = cmd.Wait()
	}
	require.NoError(t, ctx.Err(), "pendingctl %v still running after %v", args, timeout)
	code := 0
	if err != nil {
		var exitErr *exec.ExitError
		require.True(t, errors.As(err, &exitErr), "running pendingctl %v: %v", args, err)
		code = exitErr.ExitCode()
	}
	return result{stdout: stdout.String(), stderr: stderr.String(), code: code}
}

// secret marks every payload the tests write: no command but cat may
// print it.
const secret = "s3cr3t-history"

// newStore creates a store at dir/sync-pending.jsonl holding payloads,
// written by the library itself, and returns its path.
func newStore(t *testing.T, dir string, payloads ...string) string {
	t.Helper()
	path := filepath.Join(dir, "sync-pending.jsonl")
	appendPayloads(t, path, payloads...)
	return path
}

// failReplays runs n replays that fail every record, with the store
// opened with maxAttempts, so records gain attempts or are dead-lettered.
func failReplays(t *testing.T, path string, maxAttempts, n int) {
	t.Helper()
	s, err := syncbreaker.OpenJSONLStore(path, syncbreaker.StoreConfig{MaxAttempts: maxAttempts})
	require.NoError(t, err)
	for range n {
		_, err := s.Replay(t.Context(), func(context.Context, syncbreaker.Record) error { return errors.New("server down") })
		require.NoError(t, err)
	}
	closeStore(t, s)
}

// fileLines returns path's lines, newline included.
func fileLines(t *testing.T, path string) [][]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return bytes.SplitAfter(b, []byte("\n"))[:bytes.Count(b, []byte("\n"))]
}

type fileState struct {
	data  []byte
	mtime time.Time
	mode  fs.FileMode
}

// snapshot records every file in dir, so a test can show a command
// changed nothing (no byte, no mtime, no new file such as a lock file).
func snapshot(t *testing.T, dir string) map[string]fileState {
	t.Helper()
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	m := map[string]fileState{}
	for _, e := range entries {
		fi, err := e.Info()
		require.NoError(t, err)
		st := fileState{mtime: fi.ModTime(), mode: fi.Mode()}
		if !e.IsDir() {
			st.data, err = os.ReadFile(filepath.Join(dir, e.Name()))
			require.NoError(t, err)
		}
		m[e.Name()] = st
	}
	return m
}

func TestUsage(t *testing.T) {
	t.Parallel()
	helps := [][]string{{"help"}, {"--help"}, {"-h"}}
	for _, c := range commands() {
		helps = append(helps, []string{c.name, "--help"}, []string{c.name, "-h"}, []string{"help", c.name})
	}
	for _, args := range helps {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			r := pendingctl(t, args...)
			assert.Equal(t, exitOK, r.code)
			assert.Contains(t, r.stdout, "Usage")
			assert.Contains(t, r.stdout, "Exit codes:")
			assert.Contains(t, r.stdout, "3  the store is held by another process")
			assert.Empty(t, r.stderr)
			if len(args) == 2 {
				name := args[0]
				if name == "help" {
					name = args[1]
				}
				assert.Contains(t, r.stdout, "pendingctl "+name+" [flags] FILE")
				assert.Contains(t, r.stdout, "-max-payload-bytes")
			}
		})
	}
	bad := []struct {
		args []string
		want string
	}{
		{nil, "Commands:"},
		{[]string{"bogus"}, `unknown command "bogus"`},
		{[]string{"help", "bogus"}, `unknown command "bogus"`},
		{[]string{"stat"}, "want exactly one FILE, got 0"},
		{[]string{"verify", "a", "b"}, "want exactly one FILE, got 2"},
		{[]string{"stat", "--nope", "f"}, "flag provided but not defined: -nope"},
		{[]string{"cat", "--dead", "--quarantine", "f"}, "--dead and --quarantine exclude each other"},
		{[]string{"stat", "--max-payload-bytes", "lots", "f"}, "invalid value"},
	}
	for _, tc := range bad {
		t.Run(fmt.Sprint(tc.args), func(t *testing.T) {
			r := pendingctl(t, tc.args...)
			assert.Equal(t, exitUsage, r.code)
			assert.Contains(t, r.stderr, tc.want)
			assert.Empty(t, r.stdout)
		})
	}
}

// TestRunInProcess drives run directly, the way main does.
func TestRunInProcess(t *testing.T) {
	t.Parallel()
	path := newStore(t, t.TempDir(), `{"n":1}`)
	var stdout, stderr bytes.Buffer
	// Flags after FILE work too.
	code := run([]string{"stat", path, "--json"}, &stdout, &stderr)
	require.Equal(t, exitOK, code, stderr.String())
	assert.Contains(t, stdout.String(), `"records": 1`)

	stdout.Reset()
	code = run([]string{"cat", "--", path}, &stdout, &stderr)
	require.Equal(t, exitOK, code, stderr.String())
	assert.Equal(t, "{\"n\":1}\n", stdout.String())
}

func TestParseInterspersed(t *testing.T) {
	t.Parallel()
	tests := []struct {
		args    []string
		wantPos []string
		wantX   bool
	}{
		{[]string{"f"}, []string{"f"}, false},
		{[]string{"-x", "f"}, []string{"f"}, true},
		{[]string{"f", "-x"}, []string{"f"}, true},
		{[]string{"f", "g", "-x"}, []string{"f", "g"}, true},
		{[]string{"--", "-x"}, []string{"-x"}, false},
		{[]string{"f", "--", "-x"}, []string{"f", "-x"}, false},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			fs := flag.NewFlagSet("t", flag.ContinueOnError)
			x := fs.Bool("x", false, "")
			pos, err := parseInterspersed(fs, tc.args)
			require.NoError(t, err)
			assert.Equal(t, tc.wantPos, pos)
			assert.Equal(t, tc.wantX, *x)
		})
	}
}
