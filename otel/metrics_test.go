package syncbreakerotel_test

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/pubsub/gochannel"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/syncbreaker/syncbreaker"
	syncbreakerotel "github.com/syncbreaker/syncbreaker/otel"
)

const (
	topic     = "sync"
	storeName = "sync-pending.jsonl"
	// secret is in every payload of these tests; no attribute may carry it.
	secret = "secret-command"
	// badLine is a line no reader can parse: opening the store quarantines it.
	badLine = `{"_v":1,"id":` + "\n"
)

// payload returns payload n; they all have the same length, so MaxBytes
// can be set to a number of records.
func payload(n int) []byte { return fmt.Appendf(nil, `{"cmd":"%s-%02d"}`, secret, n) }

// poison is a payload the server rejects for good (a 4xx): the handler
// settles it with a Permanent error, and the store dead-letters it.
var poison = payload(99)

// reading is one instrument in one collection.
type reading struct {
	Kind, Unit string
	// Points maps the attributes that tell an instrument's series apart
	// (those other than the store name and the topic, "" for none) to
	// the value.
	Points map[string]float64
}

// figures are the values a collection should show, for readings.
type figures struct {
	state                                           string // closed, open, half_open
	failures, opens, spilled, spillErrors           int64
	republished, republishErrors, replays           int64
	settleTimeouts, syncErrors                      int64
	pending, pendingSize                            int64
	oldestAge                                       float64 // seconds
	quarantined, deadLettered                       int64
	rejectedFull, rejectedNoSpace, rejectedTooLarge int64
	pace                                            float64 // records a second; 0: the start, 10
	window                                          int64   // 0: 1
}

// readings is every instrument Register makes over a breaker and a store,
// with f's values.
func (f figures) readings() map[string]reading {
	state := map[string]float64{}
	for _, s := range []string{"closed", "open", "half_open"} {
		state["syncbreaker.circuit.state="+s] = 0
	}
	state["syncbreaker.circuit.state="+f.state] = 1
	one := func(kind, unit string, v float64) reading {
		return reading{Kind: kind, Unit: unit, Points: map[string]float64{"": v}}
	}
	return map[string]reading{
		"syncbreaker.circuit.state":                {Kind: "UpDownCounter", Unit: "{circuit}", Points: state},
		"syncbreaker.circuit.consecutive_failures": one("Gauge", "{failure}", float64(f.failures)),
		"syncbreaker.circuit.opens":                one("Counter", "{open}", float64(f.opens)),
		"syncbreaker.spilled.records":              one("Counter", "{record}", float64(f.spilled)),
		"syncbreaker.spill.errors":                 one("Counter", "{error}", float64(f.spillErrors)),
		"syncbreaker.republished.records":          one("Counter", "{record}", float64(f.republished)),
		"syncbreaker.republish.errors":             one("Counter", "{error}", float64(f.republishErrors)),
		"syncbreaker.replays":                      one("Counter", "{replay}", float64(f.replays)),
		"syncbreaker.settle.timeouts":              one("Counter", "{timeout}", float64(f.settleTimeouts)),
		"syncbreaker.republish.pace":               one("Gauge", "{record}/s", cmp.Or(f.pace, 10)),
		"syncbreaker.republish.window":             one("Gauge", "{record}", float64(cmp.Or(f.window, 1))),
		"syncbreaker.sync.errors":                  one("Counter", "{error}", float64(f.syncErrors)),
		"syncbreaker.pending.count":                one("UpDownCounter", "{record}", float64(f.pending)),
		"syncbreaker.pending.size":                 one("UpDownCounter", "By", float64(f.pendingSize)),
		"syncbreaker.pending.oldest_age":           one("Gauge", "s", f.oldestAge),
		"syncbreaker.quarantined.lines":            one("Counter", "{line}", float64(f.quarantined)),
		"syncbreaker.dead_lettered.records":        one("Counter", "{record}", float64(f.deadLettered)),
		"syncbreaker.rejected.appends": {Kind: "Counter", Unit: "{append}", Points: map[string]float64{
			"error.type=full":      float64(f.rejectedFull),
			"error.type=no_space":  float64(f.rejectedNoSpace),
			"error.type=too_large": float64(f.rejectedTooLarge),
		}},
	}
}

// collect reads every instrument once through reader. Each series must
// carry exactly labels (the store name and topic Register was
// given), and no attribute may carry payload content or a directory.
func collect(t *testing.T, reader *sdkmetric.ManualReader, labels map[string]string) map[string]reading {
	t.Helper()
	var rm metricdata.ResourceMetrics
	require.NoError(t, reader.Collect(context.Background(), &rm))
	got := map[string]reading{}
	for _, sm := range rm.ScopeMetrics {
		require.Equal(t, syncbreakerotel.ScopeName, sm.Scope.Name)
		for _, m := range sm.Metrics {
			r := reading{Unit: m.Unit, Points: map[string]float64{}}
			add := func(attrs attribute.Set, v float64) {
				var series []string
				common := map[string]string{}
				for _, kv := range attrs.ToSlice() {
					value := kv.Value.String()
					assert.NotContains(t, value, secret, "%s: attribute %s carries a payload", m.Name, kv.Key)
					assert.NotContains(t, value, string(filepath.Separator), "%s: attribute %s carries a path", m.Name, kv.Key)
					switch kv.Key {
					case syncbreakerotel.StoreNameKey, syncbreakerotel.TopicKey:
						common[string(kv.Key)] = value
					default:
						series = append(series, string(kv.Key)+"="+value)
					}
				}
				assert.Equal(t, labels, common, "%s: labels", m.Name)
				key := strings.Join(series, ",")
				_, dup := r.Points[key]
				assert.False(t, dup, "%s: series %q observed twice", m.Name, key)
				r.Points[key] = v
			}
			switch data := m.Data.(type) {
			case metricdata.Sum[int64]:
				r.Kind = "UpDownCounter"
				if data.IsMonotonic {
					r.Kind = "Counter"
				}
				require.Equal(t, metricdata.CumulativeTemporality, data.Temporality, m.Name)
				for _, p := range data.DataPoints {
					add(p.Attributes, float64(p.Value))
				}
			case metricdata.Gauge[int64]:
				r.Kind = "Gauge"
				for _, p := range data.DataPoints {
					add(p.Attributes, float64(p.Value))
				}
			case metricdata.Gauge[float64]:
				r.Kind = "Gauge"
				for _, p := range data.DataPoints {
					add(p.Attributes, p.Value)
				}
			default:
				t.Fatalf("%s: unexpected aggregation %T", m.Name, m.Data)
			}
			if len(r.Points) > 0 {
				got[m.Name] = r
			}
		}
	}
	return got
}

// server is the daemon's backend: down answers every send with an error
// that counts as a failure; poison is refused for good.
type server struct {
	down      atomic.Bool
	mu        sync.Mutex
	delivered []string
}

var errDown = errors.New("503 service unavailable")

func (s *server) send(p []byte) error {
	switch {
	case s.down.Load():
		return errDown
	case string(p) == string(poison):
		return syncbreaker.Permanent(errors.New("400 bad request"))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.delivered = append(s.delivered, string(p))
	return nil
}

// lineBytes is what one payload of payload's length takes in the store,
// and the size of the quarantine file after badLine: measured on a store
// of its own, so MaxBytes can be set to a number of records.
func lineBytes(t *testing.T) (line, quarantine int64) {
	t.Helper()
	path := filepath.Join(t.TempDir(), storeName)
	require.NoError(t, os.WriteFile(path, []byte(badLine), 0o600))
	store, err := syncbreaker.OpenJSONLStore(path, syncbreaker.StoreConfig{})
	require.NoError(t, err)
	defer func() { require.NoError(t, store.Close()) }()
	require.NoError(t, store.Append(t.Context(), payload(0)))
	info, err := os.Stat(store.QuarantinePath())
	require.NoError(t, err)
	return store.Stats().PendingBytes, info.Size()
}

// TestScriptedOutage drives the first user's wiring (a default GoChannel, a
// processor loop that settles, Run) through an outage in fake time and
// checks every instrument at four points: closed with failures counted,
// open with payloads spilled and appends rejected, half-open with the
// first republished record out as the probe, and closed again with the
// backlog drained and a poison record dead-lettered.
func TestScriptedOutage(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := t.Context()
		line, quarantine := lineBytes(t)
		const fits = 3 // records the store takes before it is full

		path := filepath.Join(t.TempDir(), storeName)
		require.NoError(t, os.WriteFile(path, []byte(badLine), 0o600))
		store, err := syncbreaker.OpenJSONLStore(path, syncbreaker.StoreConfig{
			MaxBytes:        quarantine + fits*line,
			MaxPayloadBytes: 64,
		})
		require.NoError(t, err)
		defer func() { require.NoError(t, store.Close()) }()

		bus := gochannel.NewGoChannel(gochannel.Config{}, watermill.NopLogger{})
		republisher, err := syncbreaker.NewRepublisher(bus, topic, syncbreaker.RepublisherConfig{SettleTimeout: time.Minute})
		require.NoError(t, err)
		b, err := syncbreaker.New(syncbreaker.Config{FailureThreshold: 3, ResetInterval: time.Minute, Jitter: -1}, store, republisher)
		require.NoError(t, err)

		reader := sdkmetric.NewManualReader()
		provider := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
		defer func() { require.NoError(t, provider.Shutdown(context.Background())) }()
		reg, err := syncbreakerotel.Register(provider, b, store, syncbreakerotel.Config{Topic: republisher.Topic()})
		require.NoError(t, err)
		defer func() { require.NoError(t, reg.Unregister()) }()
		labels := map[string]string{"syncbreaker.store.name": storeName, "messaging.destination.name": topic}

		// The processor loop. It holds the first republished message until
		// release is closed, so the circuit can be seen half-open with its
		// probe out.
		srv := &server{}
		srv.down.Store(true)
		release := make(chan struct{})
		releaseOnce := sync.OnceFunc(func() { close(release) })
		msgs, err := bus.Subscribe(ctx, topic)
		require.NoError(t, err)
		runCtx, stopRun := context.WithCancel(ctx)
		var loop, run sync.WaitGroup
		defer func() { // the daemon's stop order: breaker, processor loop and bus
			stopRun()
			releaseOnce()
			run.Wait()
			assert.NoError(t, bus.Close())
			loop.Wait()
		}()
		loop.Go(func() {
			held := false
			for msg := range msgs {
				if !held {
					held = true
					<-release
				}
				err := handle(ctx, b, srv, msg.Payload)
				if b.Settle(msg, err) || err == nil {
					msg.Ack()
				} else {
					msg.Nack()
				}
			}
		})
		run.Go(func() { assert.NoError(t, b.Run(runCtx)) })

		// Closed: two failures, below the threshold, are counted; the
		// caller keeps those payloads.
		send := func(p []byte) error { return b.Execute(ctx, p, func(context.Context) error { return srv.send(p) }) }
		require.ErrorIs(t, send(payload(0)), errDown)
		require.ErrorIs(t, send(payload(1)), errDown)
		require.Equal(t, figures{state: "closed", failures: 2, quarantined: 1}.readings(), collect(t, reader, labels))

		// Open: the third failure opens the circuit and spills its
		// payload; two more spill, then the store is full, then a payload
		// over MaxPayloadBytes is refused.
		require.NoError(t, send(payload(2)))
		require.Equal(t, syncbreaker.StateOpen, b.State())
		require.NoError(t, send(poison))
		require.NoError(t, send(payload(3)))
		require.ErrorIs(t, send(payload(4)), syncbreaker.ErrStoreFull)
		require.ErrorIs(t, send([]byte(`{"cmd":"`+secret+strings.Repeat("x", 64)+`"}`)), syncbreaker.ErrPayloadTooLarge)
		time.Sleep(45 * time.Second)
		require.Equal(t, figures{
			state: "open", opens: 1, spilled: 3, spillErrors: 2,
			pending: 3, pendingSize: 3 * line, oldestAge: 45,
			quarantined: 1, rejectedFull: 1, rejectedTooLarge: 1,
		}.readings(), collect(t, reader, labels))

		// Half-open: a minute after it opened, Run moves the circuit to
		// half-open and republishes; the first record is the probe, held
		// by the processor loop.
		srv.down.Store(false)
		time.Sleep(20 * time.Second)
		synctest.Wait()
		require.Equal(t, figures{
			state: "half_open", opens: 1, spilled: 3, spillErrors: 2, replays: 1,
			pending: 3, pendingSize: 3 * line, oldestAge: 65,
			quarantined: 1, rejectedFull: 1, rejectedTooLarge: 1,
		}.readings(), collect(t, reader, labels))

		// Closed: the probe succeeds and the round drains the backlog; the
		// server refuses the poison record for good, so it is
		// dead-lettered and its Republish fails.
		releaseOnce()
		time.Sleep(10 * time.Second)
		synctest.Wait()
		srv.mu.Lock()
		assert.Equal(t, []string{string(payload(2)), string(payload(3))}, srv.delivered)
		srv.mu.Unlock()
		require.Equal(t, figures{
			state: "closed", opens: 1, spilled: 3, spillErrors: 2,
			republished: 2, republishErrors: 1, replays: 1,
			quarantined: 1, deadLettered: 1, rejectedFull: 1, rejectedTooLarge: 1,
			pace: 22.5, // two records settled as handled: 10 x 1.5 x 1.5, the ramp
		}.readings(), collect(t, reader, labels))
	})
}

// handle is the daemon's handler for a republished message: it drives the
// breaker itself, as the first user's does.
func handle(ctx context.Context, b *syncbreaker.Breaker, srv *server, p []byte) error {
	if b.IsOpen() {
		return b.SaveForRetry(ctx, p)
	}
	err := srv.send(p)
	switch {
	case err == nil:
		b.RecordSuccess()
		return nil
	case syncbreaker.IsPermanent(err):
		return err
	default:
		b.RecordFailure()
		return b.SaveForRetry(ctx, p)
	}
}

// setup returns a breaker over a store in a temporary directory, and a
// reader of a fresh MeterProvider.
func setup(t *testing.T) (*syncbreaker.Breaker, *syncbreaker.JSONLStore, *sdkmetric.ManualReader, *sdkmetric.MeterProvider) {
	t.Helper()
	store, err := syncbreaker.OpenJSONLStore(filepath.Join(t.TempDir(), "private", storeName), syncbreaker.StoreConfig{})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, store.Close()) })
	bus := gochannel.NewGoChannel(gochannel.Config{}, watermill.NopLogger{})
	t.Cleanup(func() { require.NoError(t, bus.Close()) })
	republisher, err := syncbreaker.NewRepublisher(bus, topic, syncbreaker.RepublisherConfig{})
	require.NoError(t, err)
	b, err := syncbreaker.New(syncbreaker.Config{FailureThreshold: 1}, store, republisher)
	require.NoError(t, err)
	reader := sdkmetric.NewManualReader()
	provider := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() { require.NoError(t, provider.Shutdown(context.Background())) })
	return b, store, reader, provider
}

func TestUnregisterStopsObserving(t *testing.T) {
	b, store, reader, provider := setup(t)
	reg, err := syncbreakerotel.Register(provider, b, store, syncbreakerotel.Config{})
	require.NoError(t, err)
	labels := map[string]string{"syncbreaker.store.name": storeName}
	require.Len(t, collect(t, reader, labels), 18)

	require.NoError(t, reg.Unregister())
	b.RecordFailure() // a change nobody observes any more
	require.NoError(t, b.SaveForRetry(t.Context(), payload(1)))
	assert.Empty(t, collect(t, reader, labels))
	require.NoError(t, reg.Unregister(), "a second Unregister is harmless")
}

// TestRegisterObservesWhatIsGiven: a nil store or breaker leaves its
// instruments out, and Config names the series.
func TestRegisterObservesWhatIsGiven(t *testing.T) {
	breakerOnly := []string{
		"syncbreaker.circuit.consecutive_failures", "syncbreaker.circuit.opens", "syncbreaker.circuit.state",
		"syncbreaker.replays", "syncbreaker.republish.errors", "syncbreaker.republish.pace", "syncbreaker.republish.window", "syncbreaker.republished.records",
		"syncbreaker.settle.timeouts", "syncbreaker.spill.errors", "syncbreaker.spilled.records",
	}
	storeOnly := []string{
		"syncbreaker.dead_lettered.records", "syncbreaker.pending.count", "syncbreaker.pending.oldest_age",
		"syncbreaker.pending.size", "syncbreaker.quarantined.lines", "syncbreaker.rejected.appends",
		"syncbreaker.sync.errors",
	}
	tests := []struct {
		name      string
		noBreaker bool
		noStore   bool
		cfg       syncbreakerotel.Config
		labels    map[string]string
		want      []string
	}{
		{"breaker and store", false, false, syncbreakerotel.Config{Topic: topic},
			map[string]string{"syncbreaker.store.name": storeName, "messaging.destination.name": topic},
			append(append([]string(nil), breakerOnly...), storeOnly...)},
		{"a store name of your own", false, false, syncbreakerotel.Config{StoreName: "history"},
			map[string]string{"syncbreaker.store.name": "history"},
			append(append([]string(nil), breakerOnly...), storeOnly...)},
		{"breaker over a store of its own", false, true, syncbreakerotel.Config{StoreName: "history.db"},
			map[string]string{"syncbreaker.store.name": "history.db"}, breakerOnly},
		{"breaker without labels", false, true, syncbreakerotel.Config{}, map[string]string{}, breakerOnly},
		{"store only", true, false, syncbreakerotel.Config{},
			map[string]string{"syncbreaker.store.name": storeName}, storeOnly},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, store, reader, provider := setup(t)
			if tt.noBreaker {
				b = nil
			}
			if tt.noStore {
				store = nil
			}
			reg, err := syncbreakerotel.Register(provider, b, store, tt.cfg)
			require.NoError(t, err)
			defer func() { require.NoError(t, reg.Unregister()) }()
			var got []string
			for name := range collect(t, reader, tt.labels) {
				got = append(got, name)
			}
			sort.Strings(got)
			want := append([]string(nil), tt.want...)
			sort.Strings(want)
			assert.Equal(t, want, got)
		})
	}
}

func TestRegisterRejects(t *testing.T) {
	b, store, _, provider := setup(t)
	tests := []struct {
		name     string
		provider metric.MeterProvider
		b        *syncbreaker.Breaker
		store    *syncbreaker.JSONLStore
		cfg      syncbreakerotel.Config
		want     string
	}{
		{"nil provider", nil, b, store, syncbreakerotel.Config{}, "nil MeterProvider"},
		{"nothing to observe", provider, nil, nil, syncbreakerotel.Config{StoreName: "x"}, "nothing to observe"},
		{"a path as store name", provider, b, nil, syncbreakerotel.Config{StoreName: store.Path()}, "StoreName is a path"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reg, err := syncbreakerotel.Register(tt.provider, tt.b, tt.store, tt.cfg)
			require.ErrorIs(t, err, syncbreaker.ErrInvalidConfig)
			assert.Nil(t, reg)
			assert.Contains(t, err.Error(), tt.want)
			assert.True(t, strings.HasPrefix(err.Error(), "syncbreakerotel: "), err.Error())
			assert.NotContains(t, err.Error(), store.Path(), "the path stays out of the error")
		})
	}
}

// TestInstrumentsAreDocumented: the package documentation's table lists
// every instrument with its kind and unit, and nothing else.
func TestInstrumentsAreDocumented(t *testing.T) {
	doc, err := os.ReadFile("doc.go")
	require.NoError(t, err)
	row := regexp.MustCompile(`(?m)^//\t(syncbreaker\.[a-z_.]+)\s+(Counter|UpDownCounter|Gauge)\s+(\S+)\s`)
	documented := map[string][2]string{}
	for _, m := range row.FindAllStringSubmatch(string(doc), -1) {
		documented[m[1]] = [2]string{m[2], m[3]}
	}
	registered := map[string][2]string{}
	for name, r := range (figures{state: "closed"}).readings() {
		registered[name] = [2]string{r.Kind, r.Unit}
	}
	assert.Equal(t, registered, documented)
}

// A republished message the daemon never settles shows in
// syncbreaker.settle.timeouts: the sign of a daemon that does not call
// Settle, while the record stays pending.
func TestSettleTimeoutsObserved(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store, err := syncbreaker.OpenJSONLStore(filepath.Join(t.TempDir(), storeName), syncbreaker.StoreConfig{})
		require.NoError(t, err)
		t.Cleanup(func() { require.NoError(t, store.Close()) })
		bus := gochannel.NewGoChannel(gochannel.Config{}, watermill.NopLogger{})
		t.Cleanup(func() { require.NoError(t, bus.Close()) })
		msgs, err := bus.Subscribe(t.Context(), topic)
		require.NoError(t, err)
		republisher, err := syncbreaker.NewRepublisher(bus, topic, syncbreaker.RepublisherConfig{SettleTimeout: 10 * time.Second})
		require.NoError(t, err)
		b, err := syncbreaker.New(syncbreaker.Config{}, store, republisher)
		require.NoError(t, err)
		reader := sdkmetric.NewManualReader()
		provider := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
		t.Cleanup(func() { require.NoError(t, provider.Shutdown(context.Background())) })
		_, err = syncbreakerotel.Register(provider, b, store, syncbreakerotel.Config{})
		require.NoError(t, err)
		require.NoError(t, store.Append(t.Context(), payload(1)))

		go func() { (<-msgs).Ack() }() // handled, never settled
		_, err = b.RetryPending(t.Context())
		require.ErrorIs(t, err, syncbreaker.ErrSettleTimeout)
		got := collect(t, reader, map[string]string{"syncbreaker.store.name": storeName})
		assert.Equal(t, map[string]float64{"": 1}, got["syncbreaker.settle.timeouts"].Points)
		assert.Equal(t, map[string]float64{"": 1}, got["syncbreaker.pending.count"].Points, "the record stays pending")
	})
}
