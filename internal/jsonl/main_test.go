package jsonl

import (
	"os"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	if os.Getenv(killChildEnv) != "" {
		os.Exit(runKillChild())
	}
	goleak.VerifyTestMain(m)
}
