package telemetry_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	colmetricpb "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/grpc"

	"github.com/hookstream/hookstream/internal/telemetry"
	"github.com/hookstream/hookstream/internal/testenv"
)

// TestSetupExporter checks which OTEL_* settings export spans and push
// metrics, using an OTLP/HTTP collector that counts the requests it gets,
// and that /metrics serves the metrics whatever is pushed.
func TestSetupExporter(t *testing.T) {
	var traces, metrics atomic.Int64
	collector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v1/traces":
			traces.Add(1)
		case "/v1/metrics":
			metrics.Add(1)
		}
		w.WriteHeader(http.StatusOK)
	}))
	defer collector.Close()
	tests := []struct {
		name          string
		env           map[string]string
		spans, pushed bool
		err           error
	}{
		{"nothing set", map[string]string{}, false, false, nil},
		{"endpoint implies otlp", map[string]string{
			"OTEL_EXPORTER_OTLP_ENDPOINT": collector.URL, "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}, true, true, nil},
		{"traces none wins over an endpoint", map[string]string{"OTEL_TRACES_EXPORTER": "none",
			"OTEL_EXPORTER_OTLP_ENDPOINT": collector.URL, "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}, false, true, nil},
		{"metrics none wins over an endpoint", map[string]string{"OTEL_METRICS_EXPORTER": "none",
			"OTEL_EXPORTER_OTLP_ENDPOINT": collector.URL, "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}, true, false, nil},
		{"metrics prometheus pushes nothing", map[string]string{"OTEL_METRICS_EXPORTER": "prometheus",
			"OTEL_EXPORTER_OTLP_ENDPOINT": collector.URL, "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}, true, false, nil},
		{"traces endpoint and protocol win", map[string]string{"OTEL_TRACES_EXPORTER": "otlp",
			"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": collector.URL + "/v1/traces",
			"OTEL_EXPORTER_OTLP_PROTOCOL":        "grpc", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf"}, true, false, nil},
		{"metrics endpoint and protocol win", map[string]string{"OTEL_METRICS_EXPORTER": "otlp",
			"OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": collector.URL + "/v1/metrics",
			"OTEL_EXPORTER_OTLP_PROTOCOL":         "grpc", "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL": "http/protobuf"}, false, true, nil},
		{"unsupported traces exporter", map[string]string{"OTEL_TRACES_EXPORTER": "zipkin"}, false, false, telemetry.ErrConfig},
		{"unsupported metrics exporter", map[string]string{"OTEL_METRICS_EXPORTER": "console"}, false, false, telemetry.ErrConfig},
		{"unsupported protocol", map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}, false, false, telemetry.ErrConfig},
		{"unsupported metrics protocol", map[string]string{"OTEL_METRICS_EXPORTER": "otlp",
			"OTEL_EXPORTER_OTLP_METRICS_PROTOCOL": "http/json"}, false, false, telemetry.ErrConfig},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The exporters read their endpoint from the process
			// environment, so the test sets it there.
			for _, k := range []string{"OTEL_TRACES_EXPORTER", "OTEL_METRICS_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT",
				"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "OTEL_EXPORTER_OTLP_PROTOCOL",
				"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL"} {
				t.Setenv(k, tt.env[k])
			}
			traces.Store(0)
			metrics.Store(0)
			tel, err := telemetry.Setup(context.Background(), "test")
			if !errors.Is(err, tt.err) {
				t.Fatalf("Setup: %v, want %v", err, tt.err)
			}
			if err != nil {
				return
			}
			_, span := tel.Tracer.Tracer("test").Start(context.Background(), "span")
			span.End()
			counter, err := tel.Meter.Meter("test").Int64Counter("hookstream.test")
			if err != nil {
				t.Fatal(err)
			}
			counter.Add(context.Background(), 1)
			rec := httptest.NewRecorder()
			tel.MetricsHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
			if !regexp.MustCompile(`(?m)^hookstream_test_total({.*})? 1$`).MatchString(rec.Body.String()) {
				t.Errorf("/metrics lacks hookstream_test_total 1:\n%s", rec.Body)
			}
			// Shutdown flushes both: the span batch and a last metric push.
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := tel.Shutdown(ctx); err != nil {
				t.Fatalf("Shutdown: %v", err)
			}
			if exported := traces.Load() > 0; exported != tt.spans {
				t.Errorf("spans exported: %v, want %v", exported, tt.spans)
			}
			if pushed := metrics.Load() > 0; pushed != tt.pushed {
				t.Errorf("metrics pushed: %v, want %v", pushed, tt.pushed)
			}
		})
	}
}

// grpcCollector counts the OTLP/gRPC export calls it gets.
type grpcCollector struct {
	coltracepb.UnimplementedTraceServiceServer
	colmetricpb.UnimplementedMetricsServiceServer
	traces, metrics atomic.Int64
}

func (c *grpcCollector) Export(context.Context, *coltracepb.ExportTraceServiceRequest) (*coltracepb.ExportTraceServiceResponse, error) {
	c.traces.Add(1)
	return &coltracepb.ExportTraceServiceResponse{}, nil
}

// metricsService is the collector's metrics service, whose Export method
// has the same name as the trace service's.
type metricsService struct{ *grpcCollector }

func (m metricsService) Export(context.Context, *colmetricpb.ExportMetricsServiceRequest) (*colmetricpb.ExportMetricsServiceResponse, error) {
	m.metrics.Add(1)
	return &colmetricpb.ExportMetricsServiceResponse{}, nil
}

// TestSetupExporterGRPC: an endpoint alone exports spans and pushes metrics
// over OTLP/gRPC, the default protocol.
func TestSetupExporterGRPC(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &grpcCollector{}
	srv := grpc.NewServer()
	coltracepb.RegisterTraceServiceServer(srv, c)
	colmetricpb.RegisterMetricsServiceServer(srv, metricsService{c})
	go func() { _ = srv.Serve(ln) }()
	defer srv.Stop()
	for _, k := range []string{"OTEL_TRACES_EXPORTER", "OTEL_METRICS_EXPORTER", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
		"OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
		"OTEL_EXPORTER_OTLP_METRICS_PROTOCOL"} {
		t.Setenv(k, "")
	}
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://"+ln.Addr().String()) // http: without TLS
	tel, err := telemetry.Setup(context.Background(), "test")
	if err != nil {
		t.Fatal(err)
	}
	_, span := tel.Tracer.Tracer("test").Start(context.Background(), "span")
	span.End()
	counter, err := tel.Meter.Meter("test").Int64Counter("hookstream.test")
	if err != nil {
		t.Fatal(err)
	}
	counter.Add(context.Background(), 1)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := tel.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if c.traces.Load() == 0 || c.metrics.Load() == 0 {
		t.Errorf("gRPC collector got %d trace and %d metric exports, want both", c.traces.Load(), c.metrics.Load())
	}
}

// TestUnexportedSampling: with no exporter, a span of the process's own is
// not recorded, yet it has a trace id to propagate; under a caller's sampled
// span the process follows the caller, so the trace the caller records
// stays whole downstream.
func TestUnexportedSampling(t *testing.T) {
	tel, err := telemetry.Setup(context.Background(), "test", telemetry.WithGetenv(func(string) string { return "" }))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tel.Shutdown(context.Background()) }()
	tr := tel.Tracer.Tracer("test")
	remote := testenv.RemoteSpan(t)
	for _, tt := range []struct {
		name      string
		parent    context.Context
		recording bool
	}{
		{"own root", context.Background(), false},
		{"caller sampled", trace.ContextWithRemoteSpanContext(context.Background(), remote), true},
		{"caller not sampled", trace.ContextWithRemoteSpanContext(context.Background(),
			remote.WithTraceFlags(0)), false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, span := tr.Start(tt.parent, "span")
			defer span.End()
			sc := span.SpanContext()
			if !sc.IsValid() {
				t.Fatal("span context invalid: nothing to propagate")
			}
			if span.IsRecording() != tt.recording || sc.IsSampled() != tt.recording {
				t.Errorf("recording %v, sampled %v; want both %v", span.IsRecording(), sc.IsSampled(), tt.recording)
			}
			if p := trace.SpanContextFromContext(tt.parent); p.IsValid() && sc.TraceID() != p.TraceID() {
				t.Errorf("trace id %s, want the caller's %s", sc.TraceID(), p.TraceID())
			}
		})
	}
}

// TestKafkaHooks produces through a client with the hooks: the record's one
// traceparent is its publish span's, a child of the produce context's span
// or, when that has none, of the traceparent the record already carried.
func TestKafkaHooks(t *testing.T) {
	k := testenv.StartKafka(t)
	exp := tracetest.NewInMemoryExporter()
	tel, err := telemetry.Setup(context.Background(), "test", telemetry.WithSpanExporter(exp))
	if err != nil {
		t.Fatal(err)
	}
	cl := k.Client(t, tel.KafkaHooks())
	adm := kadm.NewClient(cl)
	ctx := context.Background()
	if _, err := adm.CreateTopic(ctx, 1, 1, nil, "hooks"); err != nil {
		t.Fatal(err)
	}
	carried := "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	spanCtx, parent := tel.Tracer.Tracer("test").Start(ctx, "caller")
	parent.End()
	tests := []struct {
		name      string
		ctx       context.Context
		header    string
		wantTrace string
		wantSpan  string // parent of the publish span
	}{
		{"header, no span", ctx, carried, "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"},
		{"span, no header", spanCtx, "", parent.SpanContext().TraceID().String(), parent.SpanContext().SpanID().String()},
		{"span wins over header", spanCtx, carried, parent.SpanContext().TraceID().String(), parent.SpanContext().SpanID().String()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &kgo.Record{Topic: "hooks", Value: []byte(tt.name)}
			if tt.header != "" {
				r.Headers = []kgo.RecordHeader{{Key: "traceparent", Value: []byte(tt.header)}}
			}
			if err := cl.ProduceSync(tt.ctx, r).FirstErr(); err != nil {
				t.Fatal(err)
			}
			var tps []string
			for _, h := range r.Headers {
				if h.Key == "traceparent" {
					tps = append(tps, string(h.Value))
				}
			}
			if len(tps) != 1 {
				t.Fatalf("traceparent headers %q, want one", tps)
			}
			parts := strings.Split(tps[0], "-")
			if len(parts) != 4 || parts[1] != tt.wantTrace {
				t.Fatalf("traceparent %s, want trace %s", tps[0], tt.wantTrace)
			}
			var publish *tracetest.SpanStub
			for _, s := range exp.GetSpans() {
				if s.SpanContext.SpanID().String() == parts[2] {
					publish = &s
				}
			}
			if publish == nil || publish.SpanKind != trace.SpanKindProducer || publish.Parent.SpanID().String() != tt.wantSpan {
				t.Fatalf("span of traceparent %s: %+v; want a producer span, child of %s", tps[0], publish, tt.wantSpan)
			}
		})
	}
}

// TestKafkaHooksUnexported: with nothing exporting spans the hooks leave a
// record's traceparent exactly as it was produced, so the trace context
// travels from record to record unchanged.
func TestKafkaHooksUnexported(t *testing.T) {
	k := testenv.StartKafka(t)
	tel, err := telemetry.Setup(context.Background(), "test", telemetry.WithGetenv(func(string) string { return "" }))
	if err != nil {
		t.Fatal(err)
	}
	cl := k.Client(t, tel.KafkaHooks(), kgo.ConsumeTopics("unexported"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, 1, 1, nil, "unexported"); err != nil {
		t.Fatal(err)
	}
	carried := "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	r := &kgo.Record{Topic: "unexported", Headers: []kgo.RecordHeader{{Key: "traceparent", Value: []byte(carried)}}}
	if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
		t.Fatal(err)
	}
	fs := cl.PollRecords(ctx, 1)
	if err := fs.Err(); err != nil {
		t.Fatal(err)
	}
	got := fs.Records()
	if len(got) != 1 || len(got[0].Headers) != 1 || string(got[0].Headers[0].Value) != carried {
		t.Fatalf("consumed %+v, want one record with only traceparent %s", got, carried)
	}
}

// TestObserveConsumerLag scrapes the lag of a group that committed offset 1
// of a partition holding 3 records.
func TestObserveConsumerLag(t *testing.T) {
	k := testenv.StartKafka(t)
	tel, err := telemetry.Setup(context.Background(), "test")
	if err != nil {
		t.Fatal(err)
	}
	cl := k.Client(t)
	adm := kadm.NewClient(cl)
	ctx := context.Background()
	if _, err := adm.CreateTopic(ctx, 1, 1, nil, "lagging"); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "lagging", Value: []byte("x")}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	var off kadm.Offsets
	off.AddOffset("lagging", 0, 1, -1)
	if err := adm.CommitAllOffsets(ctx, "g", off); err != nil {
		t.Fatal(err)
	}
	if err := tel.ObserveConsumerLag(adm, "g"); err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	tel.MetricsHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	found := false
	for line := range strings.Lines(string(body)) {
		if strings.HasPrefix(line, "hookstream_consumer_lag{") && strings.Contains(line, `group="g"`) &&
			strings.Contains(line, `topic="lagging"`) && strings.Contains(line, `partition="0"`) {
			found = strings.HasSuffix(strings.TrimSpace(line), "} 2")
		}
	}
	if !found {
		t.Fatalf("metrics lack hookstream_consumer_lag{group=\"g\",topic=\"lagging\",partition=\"0\"} 2:\n%s", body)
	}
}
