package benchmarks

import (
	"fmt"
	"os"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if err := removeBacklogCache(); err != nil {
		fmt.Fprintln(os.Stderr, "remove backlog cache:", err)
		code = 1
	}
	if code == 0 {
		if err := goleak.Find(
			// go-resiliency's breaker sleeps out its open interval on a
			// goroutine of its own that nothing can stop; the harness test
			// that opens one leaves it behind.
			goleak.IgnoreAnyFunction("github.com/eapache/go-resiliency/breaker.(*Breaker).timer"),
		); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}
