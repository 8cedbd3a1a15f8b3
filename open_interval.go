package syncbreaker

import (
	"math/rand/v2"
	"time"
)

// Defaults used where a Config field is zero.
const (
	// DefaultFailureThreshold is used when Config.FailureThreshold is 0.
	DefaultFailureThreshold = 10
	// DefaultResetInterval is used when Config.ResetInterval is 0.
	DefaultResetInterval = time.Hour
	// DefaultMultiplier is used when Config.Multiplier is 0.
	DefaultMultiplier = 2.0
	// DefaultMaxResetFactor times ResetInterval, but never more than an
	// hour unless ResetInterval is longer, is the cap used when
	// Config.MaxResetInterval is 0 (see defaultMaxResetInterval).
	DefaultMaxResetFactor = 8
	// DefaultJitter is used when Config.Jitter is 0: each open interval is
	// spread uniformly over ±10% so a fleet of daemons that lost the same
	// server does not probe it in lockstep.
	DefaultJitter = 0.1
	// DefaultHalfOpenMaxProbes is used when Config.HalfOpenMaxProbes is 0:
	// one probe at a time, since the first outcome decides.
	DefaultHalfOpenMaxProbes = 1
	// DefaultHalfOpenProbeTimeout is used when Config.HalfOpenProbeTimeout
	// is 0.
	DefaultHalfOpenProbeTimeout = time.Minute
)

// openInterval computes how long the circuit stays open. It is not safe for
// concurrent use: the Breaker calls it with its mutex held, which also
// guards rng.
type openInterval struct {
	base       time.Duration
	multiplier float64
	max        time.Duration
	jitter     float64    // fraction in [0, 1); 0 means none
	rng        *rand.Rand // nil means math/rand/v2's top-level generator
}

// next returns the open interval after reopens consecutive re-opens from
// half-open (0 for an open that follows a closed circuit): base grown by
// multiplier per re-open, capped at max, then spread by ±jitter. The jitter
// is applied after the cap, so the result lies in
// [capped*(1-jitter), capped*(1+jitter)].
func (o *openInterval) next(reopens int) time.Duration {
	d := float64(o.base)
	for i := 0; i < reopens && d < float64(o.max); i++ {
		d *= o.multiplier
	}
	d = min(d, float64(o.max))
	if o.jitter > 0 {
		var u float64
		if o.rng != nil {
			u = o.rng.Float64()
		} else {
			u = rand.Float64()
		}
		d *= 1 + o.jitter*(2*u-1)
	}
	return time.Duration(d)
}

// defaultMaxResetInterval is the cap on the grown open interval when
// Config.MaxResetInterval is 0: growth spares a server that stays down, but
// never stretches the hourly retry a daemon's users expect past an hour
// (the first user's original retried every hour).
func defaultMaxResetInterval(interval time.Duration) time.Duration {
	return min(DefaultMaxResetFactor*interval, max(interval, time.Hour))
}
