package syncbreaker

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"
)

func TestPacerSpacesEventsAfterBurst(t *testing.T) {
	tests := []struct {
		name  string
		rate  float64
		burst int
		n     int
		want  time.Duration
	}{
		{name: "burst 1", rate: 10, burst: 1, n: 11, want: time.Second},
		{name: "burst covers all", rate: 10, burst: 5, n: 5, want: 0},
		{name: "burst then pace", rate: 4, burst: 3, n: 11, want: 2 * time.Second},
		{name: "fractional rate", rate: 0.5, burst: 1, n: 3, want: 4 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				p := newPacer(tt.rate, tt.burst)
				start := time.Now()
				for i := range tt.n {
					if err := p.Wait(t.Context()); err != nil {
						t.Fatalf("Wait %d: %v", i, err)
					}
				}
				if got := time.Since(start); got != tt.want {
					t.Errorf("%d events took %v, want %v", tt.n, got, tt.want)
				}
			})
		})
	}
}

func TestPacerRefillsWhileIdle(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPacer(1, 3)
		for range 3 {
			if err := p.Wait(t.Context()); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(10 * time.Second) // idle long enough to refill the whole burst
		start := time.Now()
		for range 3 {
			if err := p.Wait(t.Context()); err != nil {
				t.Fatal(err)
			}
		}
		if got := time.Since(start); got != 0 {
			t.Errorf("a refilled burst of 3 waited %v, want 0", got)
		}
	})
}

func TestPacerCancelReturnsSlot(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPacer(1, 1)
		if err := p.Wait(t.Context()); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
		defer cancel()
		if err := p.Wait(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Wait with an expiring context = %v, want context.DeadlineExceeded", err)
		}
		// The cancelled caller gave its slot back: the next one is due one
		// interval after the first event, not two.
		start := time.Now()
		if err := p.Wait(t.Context()); err != nil {
			t.Fatal(err)
		}
		if got, want := time.Since(start), 900*time.Millisecond; got != want {
			t.Errorf("Wait after a cancelled one took %v, want %v", got, want)
		}
	})
}
