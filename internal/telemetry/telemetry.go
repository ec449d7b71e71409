// Package telemetry sets up OpenTelemetry for a process: a tracer provider
// configured from the standard OTEL_* environment, W3C trace-context
// propagation, a meter provider exported in Prometheus format on /metrics
// (and over OTLP when configured), and the tracing hooks every Kafka client
// of the process carries.
package telemetry

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/plugin/kotel"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetricgrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetrichttp"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	promexporter "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// ErrConfig is wrapped by Setup when an OTEL_* variable has a value it does
// not support.
var ErrConfig = errors.New("telemetry: unsupported configuration")

// Telemetry holds a process's providers.
type Telemetry struct {
	Tracer     trace.TracerProvider
	Meter      metric.MeterProvider
	Propagator propagation.TextMapPropagator
	registry   *prometheus.Registry
	kafkaHooks []kgo.Hook
	shutdown   []func(context.Context) error
}

type cfg struct {
	spanExporter sdktrace.SpanExporter
	global       bool
	getenv       func(string) string
}

// Option configures Setup.
type Option func(*cfg)

// WithSpanExporter exports spans to e as each one ends (tests use an
// in-memory exporter), instead of what OTEL_* configures.
func WithSpanExporter(e sdktrace.SpanExporter) Option { return func(c *cfg) { c.spanExporter = e } }

// WithGlobal also installs the providers and propagator as OpenTelemetry's
// globals (default off; a process's main turns it on).
func WithGlobal() Option { return func(c *cfg) { c.global = true } }

// WithGetenv reads the variables Setup decides by (OTEL_SERVICE_NAME,
// OTEL_TRACES_EXPORTER, OTEL_METRICS_EXPORTER, the OTLP endpoints and
// protocols) through getenv (default os.Getenv).
func WithGetenv(getenv func(string) string) Option { return func(c *cfg) { c.getenv = getenv } }

// Setup builds the providers for service (OTEL_SERVICE_NAME overrides it).
//
// Spans are exported as OTEL_TRACES_EXPORTER says: "otlp" over OTLP to
// OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT (the
// exporter's own defaults otherwise), with OTEL_EXPORTER_OTLP_PROTOCOL or
// OTEL_EXPORTER_OTLP_TRACES_PROTOCOL "grpc" (the default here) or
// "http/protobuf"; "none" exports nothing. Unset, spans are exported over
// OTLP only when an endpoint variable is set, so that a process without a
// collector does not log export errors. Other values wrap ErrConfig.
// Metrics are always served in Prometheus format (MetricsHandler), and are
// also pushed over OTLP by the same rules, read from OTEL_METRICS_EXPORTER
// ("prometheus" meaning no push) and the METRICS variants of the endpoint
// and protocol variables. The exporters read their endpoint and remaining
// OTEL_EXPORTER_OTLP_* settings (headers, TLS, timeout) from the process
// environment themselves, and the SDK reads OTEL_TRACES_SAMPLER and
// OTEL_METRIC_EXPORT_INTERVAL there.
//
// When nothing exports spans, the process starts no sampled trace of its
// own (ParentBased(NeverSample)): spans are still created, unrecorded, so a
// traceparent, with its trace id and sampling decision, still reaches Kafka
// records and receivers, but recording spans nobody reads would cost the
// deliverer and fanout a tenth of their CPU. A caller's sampled trace is
// still followed, so that a receiver continuing it keeps it.
func Setup(ctx context.Context, service string, opts ...Option) (*Telemetry, error) {
	c := cfg{getenv: os.Getenv}
	for _, o := range opts {
		o(&c)
	}
	if v := c.getenv("OTEL_SERVICE_NAME"); v != "" {
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
	exporting := true
	if c.spanExporter != nil {
		topts = append(topts, sdktrace.WithSyncer(c.spanExporter))
	} else {
		exp, err := otlpExporter(ctx, c.getenv)
		if err != nil {
			return nil, err
		}
		if exp != nil {
			topts = append(topts, sdktrace.WithBatcher(exp))
		} else {
			exporting = false
			topts = append(topts, sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.NeverSample())))
		}
	}
	tp := sdktrace.NewTracerProvider(topts...)
	t.Tracer = tp
	t.shutdown = append(t.shutdown, tp.Shutdown)

	pe, err := promexporter.New(promexporter.WithRegisterer(t.registry))
	if err != nil {
		_ = tp.Shutdown(ctx)
		return nil, fmt.Errorf("prometheus exporter: %w", err)
	}
	mopts := []sdkmetric.Option{sdkmetric.WithResource(res), sdkmetric.WithReader(pe)}
	mr, err := otlpMetricReader(ctx, c.getenv)
	if err != nil {
		_ = tp.Shutdown(ctx)
		return nil, err
	}
	if mr != nil {
		mopts = append(mopts, sdkmetric.WithReader(mr))
	}
	mp := sdkmetric.NewMeterProvider(mopts...)
	t.Meter = mp
	t.shutdown = append(t.shutdown, mp.Shutdown)

	// Kafka records carry W3C trace context whatever else the process
	// propagates: that is the wire format the roles agree on. Without an
	// exporter the hooks' spans would go nowhere, and records carry their
	// traceparent along as they are (see KafkaHooks).
	if exporting {
		tc := propagation.TraceContext{}
		t.kafkaHooks = []kgo.Hook{
			recordTrace{tc}, // must run before kotel's produce hook
			kotel.NewTracer(kotel.TracerProvider(tp), kotel.TracerPropagator(tc)),
		}
	}
	if c.global {
		otel.SetTracerProvider(tp)
		otel.SetMeterProvider(mp)
		otel.SetTextMapPropagator(t.Propagator)
	}
	return t, nil
}

// otlpExporter returns the OTLP span exporter the environment asks for, or
// nil for none.
func otlpExporter(ctx context.Context, getenv func(string) string) (sdktrace.SpanExporter, error) {
	protocol, err := otlpProtocol(getenv, "TRACES")
	if err != nil || protocol == "" {
		return nil, err
	}
	var exp sdktrace.SpanExporter
	if protocol == "grpc" {
		exp, err = otlptracegrpc.New(ctx)
	} else {
		exp, err = otlptracehttp.New(ctx)
	}
	if err != nil {
		return nil, fmt.Errorf("otlp trace exporter: %w", err)
	}
	return exp, nil
}

// otlpMetricReader returns a reader pushing metrics over OTLP every
// OTEL_METRIC_EXPORT_INTERVAL (60s by default) when the environment asks
// for it, or nil for none.
func otlpMetricReader(ctx context.Context, getenv func(string) string) (sdkmetric.Reader, error) {
	protocol, err := otlpProtocol(getenv, "METRICS")
	if err != nil || protocol == "" {
		return nil, err
	}
	var exp sdkmetric.Exporter
	if protocol == "grpc" {
		exp, err = otlpmetricgrpc.New(ctx)
	} else {
		exp, err = otlpmetrichttp.New(ctx)
	}
	if err != nil {
		return nil, fmt.Errorf("otlp metric exporter: %w", err)
	}
	return sdkmetric.NewPeriodicReader(exp), nil
}

// otlpProtocol decides OTLP export of one signal (TRACES or METRICS) from
// OTEL_<signal>_EXPORTER and the endpoint and protocol variables, general
// and per signal: the protocol ("grpc" or "http/protobuf"), or "" for no
// export.
func otlpProtocol(getenv func(string) string, signal string) (string, error) {
	exporter := "OTEL_" + signal + "_EXPORTER"
	switch v := getenv(exporter); {
	case v == "none", v == "prometheus" && signal == "METRICS": // /metrics serves Prometheus anyway
		return "", nil
	case v == "":
		if getenv("OTEL_EXPORTER_OTLP_"+signal+"_ENDPOINT") == "" && getenv("OTEL_EXPORTER_OTLP_ENDPOINT") == "" {
			return "", nil
		}
	case v != "otlp":
		return "", fmt.Errorf("%w: %s=%q (want otlp or none)", ErrConfig, exporter, v)
	}
	name := "OTEL_EXPORTER_OTLP_" + signal + "_PROTOCOL"
	protocol := getenv(name)
	if protocol == "" {
		name = "OTEL_EXPORTER_OTLP_PROTOCOL"
		protocol = getenv(name)
	}
	switch protocol {
	case "", "grpc":
		return "grpc", nil
	case "http/protobuf":
		return protocol, nil
	}
	return "", fmt.Errorf("%w: %s=%q (want grpc or http/protobuf)", ErrConfig, name, protocol)
}

// KafkaHooks is the kgo option every Kafka client of the process carries:
// franz-go's kotel tracer on this process's tracer provider (a publish span
// per produced record, whose traceparent replaces the record's; a receive
// span per fetched record, child of the record's traceparent), preceded by
// a hook that lets a record produced without a span in its context continue
// the trace its own traceparent header names. Without it, records that copy
// traceparent along (fanout's deliveries, the deliverer's retries and dead
// letters) would each start a new trace.
//
// When nothing exports spans there are no hooks: a publish and a receive
// span per record cost the deliverer and fanout a twentieth of their CPU
// for spans nobody reads. The trace context still travels: the producer
// writes the caller's traceparent, fanout and the deliverer copy it from
// record to record, and the deliverer's POST continues it.
func (t *Telemetry) KafkaHooks() kgo.Opt { return kgo.WithHooks(t.kafkaHooks...) }

// recordTrace parents a produced record's span on the record's traceparent
// header when the produce context carries no span.
type recordTrace struct{ prop propagation.TextMapPropagator }

func (h recordTrace) OnProduceRecordBuffered(r *kgo.Record) {
	if trace.SpanContextFromContext(r.Context).IsValid() {
		return
	}
	// Extract wraps r.Context, so the record's cancellation is kept.
	r.Context = h.prop.Extract(r.Context, kotel.NewRecordCarrier(r))
}

// ObserveConsumerLag reports the lag of group per topic and partition as
// the gauge hookstream.consumer.lag, asking Kafka through adm at each
// collection (each scrape of /metrics). Lag is the partition's end offset
// minus the group's committed offset, so for topics written in transactions
// a caught-up group can show the commit marker (1).
func (t *Telemetry) ObserveConsumerLag(adm *kadm.Client, group string) error {
	m := t.Meter.Meter("hookstream/telemetry")
	g, err := m.Int64ObservableGauge("hookstream.consumer.lag", metric.WithUnit("{record}"),
		metric.WithDescription("Records of a partition the consumer group has not committed yet."))
	if err != nil {
		return fmt.Errorf("consumer lag gauge: %w", err)
	}
	groupAttr := attribute.String("group", group)
	_, err = m.RegisterCallback(func(ctx context.Context, o metric.Observer) error {
		ctx, cancel := context.WithTimeout(ctx, lagTimeout)
		defer cancel()
		lags, err := adm.Lag(ctx, group)
		if err != nil {
			return fmt.Errorf("consumer lag of %s: %w", group, err)
		}
		l, ok := lags[group]
		if !ok || l.Error() != nil {
			return nil // not a group yet, or no coordinator: nothing to report
		}
		for _, ml := range l.Lag.Sorted() {
			if ml.Err != nil || ml.Lag < 0 {
				continue
			}
			o.ObserveInt64(g, ml.Lag, metric.WithAttributes(groupAttr,
				attribute.String("topic", ml.Topic), attribute.String("partition", strconv.Itoa(int(ml.Partition)))))
		}
		return nil
	}, g)
	if err != nil {
		return fmt.Errorf("consumer lag callback: %w", err)
	}
	return nil
}

// lagTimeout bounds the Kafka requests of one lag collection, so that an
// unreachable Kafka slows a scrape down rather than hanging it.
const lagTimeout = 5 * time.Second

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
