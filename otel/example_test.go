package syncbreakerotel_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/pubsub/gochannel"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/syncbreaker/syncbreaker"
	syncbreakerotel "github.com/syncbreaker/syncbreaker/otel"
)

// A daemon registers its breaker and store once, with the MeterProvider
// its exporter reads (a PeriodicReader in production; a ManualReader here,
// to print one collection).
func ExampleRegister() {
	dir, err := os.MkdirTemp("", "syncbreakerotel-example-")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	store, err := syncbreaker.OpenJSONLStore(filepath.Join(dir, "sync-pending.jsonl"), syncbreaker.StoreConfig{})
	if err != nil {
		panic(err)
	}
	defer store.Close()
	bus := gochannel.NewGoChannel(gochannel.Config{}, watermill.NopLogger{})
	defer bus.Close()
	republisher, err := syncbreaker.NewRepublisher(bus, "sync", syncbreaker.RepublisherConfig{})
	if err != nil {
		panic(err)
	}
	breaker, err := syncbreaker.New(syncbreaker.Config{FailureThreshold: 1}, store, republisher)
	if err != nil {
		panic(err)
	}

	reader := sdkmetric.NewManualReader()
	provider := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer provider.Shutdown(context.Background())
	reg, err := syncbreakerotel.Register(provider, breaker, store, syncbreakerotel.Config{Topic: republisher.Topic()})
	if err != nil {
		panic(err)
	}
	defer reg.Unregister()

	breaker.RecordFailure() // the server fails: the circuit opens
	if err := breaker.SaveForRetry(context.Background(), []byte(`{"cmd":"make test"}`)); err != nil {
		panic(err)
	}

	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		panic(err)
	}
	for _, m := range rm.ScopeMetrics[0].Metrics {
		switch m.Name {
		case "syncbreaker.circuit.opens", "syncbreaker.spilled.records", "syncbreaker.pending.count":
			p := m.Data.(metricdata.Sum[int64]).DataPoints[0]
			fmt.Println(m.Name, p.Value, m.Unit, p.Attributes.Encoded(attribute.DefaultEncoder()))
		}
	}
	// Output:
	// syncbreaker.circuit.opens 1 {open} messaging.destination.name=sync,syncbreaker.store.name=sync-pending.jsonl
	// syncbreaker.spilled.records 1 {record} messaging.destination.name=sync,syncbreaker.store.name=sync-pending.jsonl
	// syncbreaker.pending.count 1 {record} messaging.destination.name=sync,syncbreaker.store.name=sync-pending.jsonl
}
