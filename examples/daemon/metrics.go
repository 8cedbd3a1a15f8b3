package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/stdout/stdoutmetric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/sdk/resource"
)

// metrics is the -metrics wiring: a MeterProvider that each start of the
// daemon registers its breaker and spill file with (syncbreakerotel, in
// startDaemon), read once when the run is over and printed at exit through
// the SDK's stdout exporter; run shuts the provider down. A real daemon
// gives the provider a PeriodicReader and an OTLP or Prometheus exporter
// instead of the ManualReader.
type metrics struct {
	reader    *sdkmetric.ManualReader
	provider  *sdkmetric.MeterProvider
	collected metricdata.ResourceMetrics
}

func newMetrics() *metrics {
	reader := sdkmetric.NewManualReader()
	return &metrics{
		reader: reader,
		provider: sdkmetric.NewMeterProvider(
			sdkmetric.WithReader(reader),
			sdkmetric.WithResource(resource.NewSchemaless(attribute.String("service.name", "syncbreaker-example-daemon"))),
		),
	}
}

// collect reads every instrument registered now: those of the last start
// of the daemon, whose counters start at that start.
func (m *metrics) collect(ctx context.Context) error {
	return m.reader.Collect(ctx, &m.collected)
}

// print writes what collect read to out, as the stdout exporter's JSON.
func (m *metrics) print(ctx context.Context, out io.Writer) error {
	fmt.Fprintf(out, "\nmetrics at exit (syncbreakerotel, through the OpenTelemetry stdout exporter; the counters are the restarted daemon's)\n")
	exporter, err := stdoutmetric.New(stdoutmetric.WithWriter(out), stdoutmetric.WithPrettyPrint())
	if err != nil {
		return err
	}
	return errors.Join(exporter.Export(ctx, &m.collected), exporter.Shutdown(ctx))
}
