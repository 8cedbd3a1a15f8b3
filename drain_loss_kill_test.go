//go:build !windows

package syncbreaker

import (
	"bytes"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestDrainLossKill9 kills a child daemon (runLossChild) with SIGKILL at a
// random moment 50 to 400 ms into its drain, again and again on the same
// spill file, then drains the rest in this process. A kill in the middle
// of a round sends again everything that round delivered (its progress is
// only committed when the round ends), so duplicates are many and only
// reported; nothing durable may be lost.
func TestDrainLossKill9(t *testing.T) {
	seeded, kills := 500, 25 // per wiring
	if testing.Short() {
		seeded, kills = 200, 5
	}
	for i, wiring := range lossWirings {
		t.Run(string(wiring), func(t *testing.T) {
			sc := newLossScenario(t, wiring, seeded)
			rng := rand.New(rand.NewPCG(uint64(i), 11))
			for k := range kills {
				sc.killChild(k+1, 50*time.Millisecond+time.Duration(rng.IntN(350))*time.Millisecond)
			}
			t.Logf("%d kills; %d of the %d seeded payloads delivered before the last life",
				kills, sc.ledger.seededDelivered(), seeded)
			sc.drainRest()
			sc.ledger.check(t, sc.path, -1)
		})
	}
}

// TestDrainLossFirstUserKill9 kills the first user's daemon as written
// (drain_loss_first_user_test.go) with SIGKILL again and again in the
// middle of its drain and its outages. What it acked or spilled must not
// be lost; fresh messages that were only on the in-memory bus at a kill
// were never acked, and are not counted (the bus dies with the process).
func TestDrainLossFirstUserKill9(t *testing.T) {
	seeded, kills := 400, 15
	if testing.Short() {
		seeded, kills = 150, 4
	}
	sc := newLossScenario(t, wiringFirstUser, seeded)
	rng := rand.New(rand.NewPCG(7, 11))
	for k := range kills {
		sc.killChild(k+1, 50*time.Millisecond+time.Duration(rng.IntN(350))*time.Millisecond)
	}
	t.Logf("%d kills; %d of the %d seeded payloads delivered before the last life",
		kills, sc.ledger.seededDelivered(), seeded)
	sc.drainRest()
	sc.ledger.check(t, sc.path, -1)
}

// killChild runs one child daemon life on the scenario's store and kills
// it after the given time, feeding the ledger from what it printed.
func (sc *lossScenario) killChild(seed int, after time.Duration) {
	t := sc.t
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(),
		lossChildEnv+"="+string(sc.wiring), lossStoreEnv+"="+sc.path, lossSeedEnv+"="+strconv.Itoa(seed))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())

	ready := make(chan struct{})
	ended := make(chan []string, 1)
	go func() { ended <- sc.ledger.readChild(stdout, ready) }()
	var childErrs []string
	read := false
	select {
	case <-ready:
		time.Sleep(after)
	case childErrs = <-ended:
		read = true
		t.Errorf("child %d ended before it was ready", seed)
	case <-time.After(lossDeadline):
		t.Errorf("child %d not ready after %v", seed, lossDeadline)
	}
	_ = cmd.Process.Kill()
	if !read {
		childErrs = <-ended // the pipe is read to EOF before Wait closes it
	}
	_ = cmd.Wait() // "signal: killed" is the point
	assert.Empty(t, childErrs, "child %d reported errors", seed)
	assert.NotContains(t, stderr.String(), "DATA RACE", "child %d", seed)
}
