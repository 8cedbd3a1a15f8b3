package syncbreakerotel

import (
	"context"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"runtime/debug"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/syncbreaker/syncbreaker"
)

// ScopeName is the instrumentation scope of the meter Register takes from
// its MeterProvider: this module's path.
const ScopeName = "github.com/syncbreaker/syncbreaker/otel"

// Attribute keys on the observations. StoreNameKey and TopicKey are on
// every observation that has them; CircuitStateKey and ErrorTypeKey tell
// the series of one instrument apart.
const (
	// StoreNameKey is the base name of the store's path
	// ("sync-pending.jsonl"), never the path: a home directory names its
	// user.
	StoreNameKey = attribute.Key("syncbreaker.store.name")
	// TopicKey is the topic spilled records are republished to, as the
	// semantic conventions' messaging attribute.
	TopicKey = attribute.Key("messaging.destination.name")
	// CircuitStateKey is the state a syncbreaker.circuit.state series
	// stands for: "closed", "open" or "half_open".
	CircuitStateKey = attribute.Key("syncbreaker.circuit.state")
	// ErrorTypeKey is why an append was rejected: "full", "no_space" or
	// "too_large" (the semantic conventions' error.type).
	ErrorTypeKey = attribute.Key("error.type")
)

// Config says how the observations are labelled. The zero value labels
// them with the store's base name only.
type Config struct {
	// Topic is recorded as messaging.destination.name: the topic the
	// republisher publishes to (TopicRepublisher.Topic). Empty means no
	// such attribute.
	Topic string
	// StoreName is recorded as syncbreaker.store.name. Empty means the
	// base name of the store's Path, and no attribute without a store. It
	// must be a name, not a path: one with a path separator is an error.
	StoreName string
}

// Register registers asynchronous instruments over b and store with a
// meter from mp, named ScopeName, and one callback that observes them all:
// each collection calls b.Stats and store.Stats once. Either b or store may
// be nil (a daemon with a PendingStore of its own passes a nil store, and
// Config.StoreName to label it); their instruments are then not created.
// Both nil, or a nil mp, is an error wrapping syncbreaker.ErrInvalidConfig.
//
// Unregister the returned Registration to stop observing; until then a
// stopped breaker and a closed store report their last figures. Register
// each breaker once per MeterProvider: two registrations with the same
// labels would report the same series twice, so give two breakers in one
// process different store names or topics.
//
// The instruments, their units and attributes are listed in the package
// documentation. No observation carries payload content or a full path.
func Register(mp metric.MeterProvider, b *syncbreaker.Breaker, store *syncbreaker.JSONLStore, cfg Config) (metric.Registration, error) {
	switch {
	case mp == nil:
		return nil, fmt.Errorf("syncbreakerotel: %w: nil MeterProvider", syncbreaker.ErrInvalidConfig)
	case b == nil && store == nil:
		return nil, fmt.Errorf("syncbreakerotel: %w: nothing to observe: nil Breaker and nil JSONLStore", syncbreaker.ErrInvalidConfig)
	case strings.ContainsAny(cfg.StoreName, `/`+string(filepath.Separator)):
		return nil, fmt.Errorf("syncbreakerotel: %w: StoreName is a path; give its base name", syncbreaker.ErrInvalidConfig)
	}
	name := cfg.StoreName
	if name == "" && store != nil {
		name = filepath.Base(store.Path())
	}
	var labels []attribute.KeyValue
	if name != "" {
		labels = append(labels, StoreNameKey.String(name))
	}
	if cfg.Topic != "" {
		labels = append(labels, TopicKey.String(cfg.Topic))
	}

	o := &observer{breaker: b, store: store}
	o.attrs = withLabels(labels)
	mk := &instruments{meter: mp.Meter(ScopeName, metric.WithInstrumentationVersion(moduleVersion()))}
	var observed []metric.Observable
	if b != nil {
		for i, s := range circuitStates {
			o.stateAttrs[i] = withLabels(labels, CircuitStateKey.String(s.name))
		}
		o.state = mk.upDownCounter("syncbreaker.circuit.state", "{circuit}",
			"1 for the state the circuit is in, 0 for the other two")
		o.failures = mk.gauge("syncbreaker.circuit.consecutive_failures", "{failure}",
			"Consecutive failures counted while the circuit is closed")
		o.opens = mk.counter("syncbreaker.circuit.opens", "{open}",
			"Transitions of the circuit to open")
		o.spilled = mk.counter("syncbreaker.spilled.records", "{record}",
			"Payloads the breaker appended to the store")
		o.spillErrors = mk.counter("syncbreaker.spill.errors", "{error}",
			"Appends of the breaker to the store that failed (the caller kept the payload)")
		o.republished = mk.counter("syncbreaker.republished.records", "{record}",
			"Records republished and removed from the store")
		o.republishErrors = mk.counter("syncbreaker.republish.errors", "{error}",
			"Republish calls that failed")
		o.replays = mk.counter("syncbreaker.replays", "{replay}",
			"Replays of the pending records started")
		o.settleTimeouts = mk.counter("syncbreaker.settle.timeouts", "{timeout}",
			"Republished messages not settled within SettleTimeout (they stay pending; a daemon that never calls Settle shows here)")
		o.pace = mk.floatGauge("syncbreaker.republish.pace", "{record}/s",
			"The republish pace: the adaptive pace, or the fixed Rate; not observed when unpaced or unknown")
		o.window = mk.gauge("syncbreaker.republish.window", "{record}",
			"Records a replay may keep in flight while the circuit is closed: the adaptive window, or MaxInFlight")
		observed = append(observed, o.state, o.failures, o.opens, o.spilled, o.spillErrors,
			o.republished, o.republishErrors, o.replays, o.settleTimeouts, o.pace, o.window)
	}
	if store != nil {
		for i, r := range rejectReasons {
			o.rejectAttrs[i] = withLabels(labels, ErrorTypeKey.String(r))
		}
		o.pending = mk.upDownCounter("syncbreaker.pending.count", "{record}",
			"Records pending in the store")
		o.pendingSize = mk.upDownCounter("syncbreaker.pending.size", "By",
			"Bytes of the pending records in the store's files")
		o.oldestAge = mk.floatGauge("syncbreaker.pending.oldest_age", "s",
			"How long the oldest pending record has waited; 0 when none is pending")
		o.quarantined = mk.counter("syncbreaker.quarantined.lines", "{line}",
			"Unreadable lines moved to the quarantine file")
		o.deadLettered = mk.counter("syncbreaker.dead_lettered.records", "{record}",
			"Records moved to the dead-letter file")
		o.rejected = mk.counter("syncbreaker.rejected.appends", "{append}",
			"Appends the store refused, by error.type (the caller kept the payload)")
		o.syncErrors = mk.counter("syncbreaker.sync.errors", "{error}",
			"Failed fsyncs of the store's active file")
		observed = append(observed, o.pending, o.pendingSize, o.oldestAge, o.quarantined,
			o.deadLettered, o.rejected, o.syncErrors)
	}
	if mk.err != nil {
		return nil, fmt.Errorf("syncbreakerotel: %w", mk.err)
	}
	reg, err := mk.meter.RegisterCallback(o.observe, observed...)
	if err != nil {
		return nil, fmt.Errorf("syncbreakerotel: register callback: %w", err)
	}
	return reg, nil
}

// circuitStates are the series of syncbreaker.circuit.state, in
// attribute-value order. The values are snake_case, as enum values in the
// semantic conventions are; State.String says "half-open".
var circuitStates = [...]struct {
	state syncbreaker.State
	name  string
}{
	{syncbreaker.StateClosed, "closed"},
	{syncbreaker.StateOpen, "open"},
	{syncbreaker.StateHalfOpen, "half_open"},
}

// rejectReasons are the error.type values of syncbreaker.rejected.appends,
// in the order observe reports them.
var rejectReasons = [...]string{"full", "no_space", "too_large"}

// observer holds the instruments and the attribute sets, made once, that
// the callback observes with.
type observer struct {
	breaker *syncbreaker.Breaker
	store   *syncbreaker.JSONLStore

	attrs       metric.MeasurementOption
	stateAttrs  [len(circuitStates)]metric.MeasurementOption
	rejectAttrs [len(rejectReasons)]metric.MeasurementOption

	state, pending, pendingSize              metric.Int64ObservableUpDownCounter
	failures, window                         metric.Int64ObservableGauge
	pace                                     metric.Float64ObservableGauge
	opens, spilled, spillErrors, republished metric.Int64ObservableCounter
	republishErrors, replays, settleTimeouts metric.Int64ObservableCounter
	quarantined, deadLettered, rejected      metric.Int64ObservableCounter
	syncErrors                               metric.Int64ObservableCounter
	oldestAge                                metric.Float64ObservableGauge
}

// observe is the one callback: one Stats call per source.
func (o *observer) observe(_ context.Context, obs metric.Observer) error {
	if b := o.breaker; b != nil {
		st := b.Stats()
		for i, s := range circuitStates {
			var in int64
			if st.State == s.state {
				in = 1
			}
			obs.ObserveInt64(o.state, in, o.stateAttrs[i])
		}
		obs.ObserveInt64(o.failures, int64(st.ConsecutiveFailures), o.attrs)
		obs.ObserveInt64(o.opens, count(st.Opens), o.attrs)
		obs.ObserveInt64(o.spilled, count(st.Spilled), o.attrs)
		obs.ObserveInt64(o.spillErrors, count(st.SpillErrors), o.attrs)
		obs.ObserveInt64(o.republished, count(st.Republished), o.attrs)
		obs.ObserveInt64(o.republishErrors, count(st.RepublishErrors), o.attrs)
		obs.ObserveInt64(o.replays, count(st.Replays), o.attrs)
		obs.ObserveInt64(o.settleTimeouts, count(st.SettleTimeouts), o.attrs)
		if st.Pace > 0 && !math.IsInf(st.Pace, 1) {
			obs.ObserveFloat64(o.pace, st.Pace, o.attrs)
		}
		obs.ObserveInt64(o.window, int64(st.Window), o.attrs)
	}
	if s := o.store; s != nil {
		st := s.Stats()
		obs.ObserveInt64(o.pending, st.PendingRecords, o.attrs)
		obs.ObserveInt64(o.pendingSize, st.PendingBytes, o.attrs)
		// A record enqueued by an earlier run carries a wall-clock time,
		// which a clock stepped back can put in the future: never negative.
		obs.ObserveFloat64(o.oldestAge, max(st.OldestAge(time.Now()), 0).Seconds(), o.attrs)
		obs.ObserveInt64(o.quarantined, st.Quarantined, o.attrs)
		obs.ObserveInt64(o.deadLettered, st.DeadLettered, o.attrs)
		for i, n := range [len(rejectReasons)]int64{st.RejectedFull, st.RejectedNoSpace, st.RejectedTooLarge} {
			obs.ObserveInt64(o.rejected, n, o.rejectAttrs[i])
		}
		obs.ObserveInt64(o.syncErrors, st.SyncErrors, o.attrs)
	}
	return nil
}

// count converts a breaker counter for an Int64 instrument.
func count(n uint64) int64 { return int64(min(n, math.MaxInt64)) }

// withLabels makes the option for one attribute set: Register makes each
// once, rather than each collection.
func withLabels(labels []attribute.KeyValue, more ...attribute.KeyValue) metric.MeasurementOption {
	return metric.WithAttributeSet(attribute.NewSet(append(append([]attribute.KeyValue(nil), labels...), more...)...))
}

// instruments makes the instruments of one meter and keeps their errors,
// so Register makes them in a list and checks once.
type instruments struct {
	meter metric.Meter
	err   error
}

func (mk *instruments) counter(name, unit, desc string) metric.Int64ObservableCounter {
	c, err := mk.meter.Int64ObservableCounter(name, metric.WithUnit(unit), metric.WithDescription(desc))
	mk.note(name, err)
	return c
}

func (mk *instruments) upDownCounter(name, unit, desc string) metric.Int64ObservableUpDownCounter {
	c, err := mk.meter.Int64ObservableUpDownCounter(name, metric.WithUnit(unit), metric.WithDescription(desc))
	mk.note(name, err)
	return c
}

func (mk *instruments) gauge(name, unit, desc string) metric.Int64ObservableGauge {
	g, err := mk.meter.Int64ObservableGauge(name, metric.WithUnit(unit), metric.WithDescription(desc))
	mk.note(name, err)
	return g
}

func (mk *instruments) floatGauge(name, unit, desc string) metric.Float64ObservableGauge {
	g, err := mk.meter.Float64ObservableGauge(name, metric.WithUnit(unit), metric.WithDescription(desc))
	mk.note(name, err)
	return g
}

func (mk *instruments) note(name string, err error) {
	if err != nil {
		mk.err = errors.Join(mk.err, fmt.Errorf("instrument %s: %w", name, err))
	}
}

// moduleVersion is this module's version in the running binary, for the
// meter's instrumentation scope; empty when the build does not say (a
// replace by a directory, a test).
func moduleVersion() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return ""
	}
	for _, m := range info.Deps {
		if m.Path != ScopeName {
			continue
		}
		if m.Replace != nil {
			return m.Replace.Version
		}
		return m.Version
	}
	return ""
}
