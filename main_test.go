package syncbreaker

import (
	"os"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	if os.Getenv(lossChildEnv) != "" {
		os.Exit(runLossChild())
	}
	goleak.VerifyTestMain(m)
}
