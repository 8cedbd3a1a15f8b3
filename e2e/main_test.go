package e2e_test

import (
	"os"
	"testing"

	"go.uber.org/goleak"
)

// TestMain runs the tests, or, when the test binary is re-executed by
// TestDaemonRestartMidOutage, the daemon (see daemon_test.go).
func TestMain(m *testing.M) {
	if os.Getenv(envDaemon) == "1" {
		os.Exit(daemonMain())
	}
	goleak.VerifyTestMain(m)
}
