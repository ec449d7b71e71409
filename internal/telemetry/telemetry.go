// Package telemetry sets up OpenTelemetry for a process: a tracer provider
// configured from the standard OTEL_* environment (OTLP export when an
// endpoint is configured, none otherwise), W3C trace-context propagation, and
// a meter provider exported in Prometheus format on /metrics.
package telemetry

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	promexporter "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// Telemetry holds a process's providers.
type Telemetry struct {
	Tracer     trace.TracerProvider
	Meter      metric.MeterProvider
	Propagator propagation.TextMapPropagator
	registry   *prometheus.Registry
	shutdown   []func(context.Context) error
}

type cfg struct {
	spanExporter sdktrace.SpanExporter
	global       bool
}

// Option configures Setup.
type Option func(*cfg)

// WithSpanExporter exports spans to e (tests use an in-memory exporter),
// instead of what OTEL_* configures.
func WithSpanExporter(e sdktrace.SpanExporter) Option { return func(c *cfg) { c.spanExporter = e } }

// WithGlobal also installs the providers and propagator as OpenTelemetry's
// globals (default off; a process's main turns it on).
func WithGlobal() Option { return func(c *cfg) { c.global = true } }

// Setup builds the providers for service. Spans are exported over OTLP/gRPC
// when OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is
// set and OTEL_TRACES_EXPORTER is not "none"; otherwise spans are still
// created (so traceparent reaches receivers) but not exported.
func Setup(ctx context.Context, service string, opts ...Option) (*Telemetry, error) {
	var c cfg
	for _, o := range opts {
		o(&c)
	}
	// OTEL_SERVICE_NAME, when set, names the service instead of the role.
	if v := os.Getenv("OTEL_SERVICE_NAME"); v != "" {
		service = v
	}
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(
		attribute.String("service.name", service),
	))
	if err != nil {
		return nil, fmt.Errorf("telemetry resource: %w", err)
	}
	t := &Telemetry{
		Propagator: propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}),
		registry:   prometheus.NewRegistry(),
	}
	topts := []sdktrace.TracerProviderOption{sdktrace.WithResource(res)}
	exp := c.spanExporter
	if exp == nil && otlpConfigured() {
		if exp, err = otlptracegrpc.New(ctx); err != nil {
			return nil, fmt.Errorf("otlp trace exporter: %w", err)
		}
	}
	if exp != nil {
		topts = append(topts, sdktrace.WithBatcher(exp))
	}
	tp := sdktrace.NewTracerProvider(topts...)
	t.Tracer = tp
	t.shutdown = append(t.shutdown, tp.Shutdown)

	pe, err := promexporter.New(promexporter.WithRegisterer(t.registry))
	if err != nil {
		return nil, fmt.Errorf("prometheus exporter: %w", err)
	}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithResource(res), sdkmetric.WithReader(pe))
	t.Meter = mp
	t.shutdown = append(t.shutdown, mp.Shutdown)
	if c.global {
		otel.SetTracerProvider(tp)
		otel.SetMeterProvider(mp)
		otel.SetTextMapPropagator(t.Propagator)
	}
	return t, nil
}

func otlpConfigured() bool {
	if os.Getenv("OTEL_TRACES_EXPORTER") == "none" {
		return false
	}
	return os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != ""
}

// MetricsHandler serves the process's metrics in Prometheus text format.
func (t *Telemetry) MetricsHandler() http.Handler {
	return promhttp.HandlerFor(t.registry, promhttp.HandlerOpts{})
}

// Shutdown flushes and stops the providers.
func (t *Telemetry) Shutdown(ctx context.Context) error {
	var errs []error
	for _, f := range t.shutdown {
		errs = append(errs, f(ctx))
	}
	return errors.Join(errs...)
}
