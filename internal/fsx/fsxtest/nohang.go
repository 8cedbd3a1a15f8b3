// Package fsxtest holds test helpers shared by the store's packages.
package fsxtest

import (
	"testing"
	"time"
)

// HangGuard is how long a call that must not block may take before the
// test calls it hung. Only a guard: a passing call takes microseconds.
const HangGuard = 5 * time.Second

// NoHang returns fn's error, or fails the test if fn has not returned
// within HangGuard. release, if not nil, is then called until fn returns
// (opening a FIFO's other end, for each open that blocks on it in turn), so
// the test reports the hang instead of leaking a goroutine stuck in
// open(2).
func NoHang(t *testing.T, release func(), fn func() error) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- fn() }()
	select {
	case err := <-done:
		return err
	case <-time.After(HangGuard):
	}
	t.Errorf("still blocked after %v", HangGuard)
	if release == nil {
		release = func() {}
	}
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	giveUp := time.After(HangGuard)
	for {
		release()
		select {
		case err := <-done:
			return err
		case <-tick.C:
		case <-giveUp:
			t.Fatal("still blocked after release")
		}
	}
}
