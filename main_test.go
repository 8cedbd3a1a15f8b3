package syncbreaker_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if any goroutine outlives them: Run,
// Close and the republisher must not leave anything behind.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
