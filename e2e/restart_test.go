package e2e_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/syncbreaker/syncbreaker"
)

// backend is the server the daemon ships to. It answers 503 while down and
// accepts each payload once per idempotency key (the message UUID).
type backend struct {
	down atomic.Bool

	mu         sync.Mutex
	keys       map[string]bool
	seqs       map[int]int // sequence number -> times accepted under distinct keys
	duplicates int
	refused    int
}

func newBackend() *backend {
	return &backend{keys: make(map[string]bool), seqs: make(map[int]int)}
}

func (b *backend) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if b.down.Load() {
		b.mu.Lock()
		b.refused++
		b.mu.Unlock()
		http.Error(w, "down", http.StatusServiceUnavailable)
		return
	}
	var p testPayload
	if err := json.NewDecoder(r.Body).Decode(&p); err != nil {
		http.Error(w, "bad payload", http.StatusBadRequest)
		return
	}
	key := r.Header.Get(idempotencyHeader)
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.keys[key] {
		b.duplicates++
	} else {
		b.keys[key] = true
		b.seqs[p.Seq]++
	}
	w.WriteHeader(http.StatusNoContent)
}

// missing returns the sequence numbers below n never accepted.
func (b *backend) missing(n int) []int {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []int
	for seq := range n {
		if b.seqs[seq] == 0 {
			out = append(out, seq)
		}
	}
	return out
}

type testPayload struct {
	Seq int    `json:"seq"`
	Cmd string `json:"cmd"`
}

// daemonProcess is the test binary re-executed as the daemon.
type daemonProcess struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stdout chan string // lines the daemon printed; closed at EOF
	stderr strings.Builder
}

// startDaemon starts the daemon process and waits until it consumes.
func startDaemon(t *testing.T, natsURL, serverURL, storePath string) *daemonProcess {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(),
		envDaemon+"=1", envNATSURL+"="+natsURL, envServerURL+"="+serverURL, envStore+"="+storePath)
	d := &daemonProcess{cmd: cmd, stdout: make(chan string, 16)}
	cmd.Stderr = &d.stderr
	var err error
	d.stdin, err = cmd.StdinPipe()
	require.NoError(t, err)
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	go func() {
		defer close(d.stdout)
		lines := bufio.NewScanner(out)
		for lines.Scan() {
			d.stdout <- lines.Text()
		}
	}()
	t.Cleanup(func() {
		if cmd.ProcessState == nil { // still running: the test failed early
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	select {
	case line, ok := <-d.stdout:
		require.True(t, ok && line == readyLine, "daemon did not start: %q %s", line, d.stderr.String())
	case <-time.After(20 * time.Second):
		t.Fatalf("daemon not ready after 20s: %s", d.stderr.String())
	}
	return d
}

// kill stops the daemon the hard way, as a crash or kill -9 would.
func (d *daemonProcess) kill(t *testing.T) {
	t.Helper()
	require.NoError(t, d.cmd.Process.Kill())
	_ = d.cmd.Wait() // "signal: killed" is the point
	for range d.stdout {
	}
}

// stop closes the daemon's stdin, its signal to shut down cleanly, and
// requires a zero exit status.
func (d *daemonProcess) stop(t *testing.T) {
	t.Helper()
	require.NoError(t, d.stdin.Close())
	done := make(chan error, 1)
	go func() { done <- d.cmd.Wait() }()
	select {
	case err := <-done:
		require.NoError(t, err, "daemon exit: %s", d.stderr.String())
	case <-time.After(20 * time.Second):
		_ = d.cmd.Process.Kill()
		<-done
		t.Fatalf("daemon did not stop within 20s: %s", d.stderr.String())
	}
	for range d.stdout {
	}
}

// eventually polls cond every 50ms until it holds or timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting until %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestDaemonRestartMidOutage runs the daemon as a separate process against a
// real JetStream server. The backend goes down; the daemon spills what it
// consumes; it is killed (kill -9) in the middle of the outage, more sync
// messages arrive while it is dead, and a new daemon process starts on the
// same spill file. When the backend comes back, every payload must reach it,
// duplicates being dropped by message UUID.
func TestDaemonRestartMidOutage(t *testing.T) {
	if testing.Short() {
		t.Skip("starts NATS and two daemon processes")
	}
	const perBatch = 40
	natsURL := startJetStream(t)
	be := newBackend()
	be.down.Store(true)
	srv := httptest.NewServer(be) // loopback only
	t.Cleanup(srv.Close)
	storePath := filepath.Join(t.TempDir(), "spill", "sync-pending.jsonl")

	nc, err := nats.Connect(natsURL)
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	js, err := nc.JetStream()
	require.NoError(t, err)
	settled := func() bool {
		ok, err := consumerSettled(js)
		require.NoError(t, err)
		return ok
	}

	producer := newPublisher(t, natsURL)
	publish := func(from, to int, pause time.Duration) error {
		for seq := from; seq < to; seq++ {
			payload, err := json.Marshal(testPayload{Seq: seq, Cmd: fmt.Sprintf("history entry %d", seq)})
			if err != nil {
				return err
			}
			if err := producer.Publish(syncTopic, message.NewMessage(watermill.NewUUID(), payload)); err != nil {
				return err
			}
			time.Sleep(pause) // a producer's pace, not a timing assertion
		}
		return nil
	}
	acked := func(min uint64) func() bool {
		return func() bool {
			info, err := js.ConsumerInfo(streamName, daemonDurable)
			require.NoError(t, err)
			return info.AckFloor.Stream >= min
		}
	}

	// First daemon: the backend is down, so what it consumes is spilled. It
	// is killed while messages still stream in: those it had not acked are
	// redelivered by JetStream to the next daemon.
	first := startDaemon(t, natsURL, srv.URL, storePath)
	published := make(chan error, 1)
	go func() { published <- publish(0, perBatch, 10*time.Millisecond) }()
	eventually(t, 20*time.Second, "the first daemon acked a quarter of the first batch", acked(perBatch/4))
	first.kill(t)
	require.NoError(t, <-published)
	require.Len(t, be.missing(2*perBatch), 2*perBatch, "the backend is down, nothing can have reached it")
	assert.Positive(t, spillBytes(t, filepath.Dir(storePath)), "the killed daemon left its spill file")

	// More data while no daemon runs: it waits in JetStream.
	require.NoError(t, publish(perBatch, 2*perBatch, 0))

	// Second daemon, same spill file, still mid-outage.
	second := startDaemon(t, natsURL, srv.URL, storePath)
	// Messages the first daemon took but never acked come back after
	// JetStream's AckWait (5s, see jetStreamConfig).
	eventually(t, 30*time.Second, "the second daemon acked every message", settled)
	require.Len(t, be.missing(2*perBatch), 2*perBatch)

	be.down.Store(false)
	eventually(t, 30*time.Second, "the backend has every payload", func() bool {
		return len(be.missing(2*perBatch)) == 0
	})
	second.stop(t)

	be.mu.Lock()
	// Delivery is at-least-once: a payload the backend took but whose
	// answer was lost is spilled and sent again under a new UUID. Count it.
	resent := 0
	for _, n := range be.seqs {
		resent += n - 1
	}
	t.Logf("backend: %d payloads, %d duplicates dropped by UUID, %d resent under a new UUID, %d requests refused while down",
		len(be.seqs), be.duplicates, resent, be.refused)
	be.mu.Unlock()

	store, err := syncbreaker.OpenJSONLStore(storePath, syncbreaker.StoreConfig{})
	require.NoError(t, err)
	defer store.Close()
	assert.Zero(t, store.Stats().PendingRecords, "records left in the spill file after the recovery")
}

// spillBytes returns the total size of the files in dir.
func spillBytes(t *testing.T, dir string) int64 {
	t.Helper()
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	var total int64
	for _, e := range entries {
		info, err := e.Info()
		require.NoError(t, err)
		if info.Mode().IsRegular() {
			total += info.Size()
		}
	}
	return total
}
