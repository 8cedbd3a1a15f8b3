package benchmarks

import (
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// go-resiliency's breaker sleeps out its open interval on a
		// goroutine of its own that nothing can stop; the harness test that
		// opens one leaves it behind.
		goleak.IgnoreAnyFunction("github.com/eapache/go-resiliency/breaker.(*Breaker).timer"),
	)
}
