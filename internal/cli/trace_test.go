package cli

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/hookstream/hookstream/deliverer"
	"github.com/hookstream/hookstream/internal/api"
	"github.com/hookstream/hookstream/internal/record"
	"github.com/hookstream/hookstream/internal/supervisor"
	"github.com/hookstream/hookstream/internal/telemetry"
	"github.com/hookstream/hookstream/internal/testenv"
	"github.com/hookstream/hookstream/producer"
	"github.com/hookstream/hookstream/schemas"
	"github.com/hookstream/hookstream/signature"
	"github.com/hookstream/hookstream/topic"
)

// TestTraceIngestToReceiver builds api, fanout and deliverer in-process as
// their commands do, each with telemetry of its own exporting to one
// in-memory exporter, and follows one event whose first attempt fails and
// is parked in the retries topic: the traceparent of both attempts carries
// the trace id of the ingest span, each attempt's POST span is the
// receiver's parent and a child of the traceparent of the record it came
// from (deliveries, then retries), and every role left spans in that one
// trace.
func TestTraceIngestToReceiver(t *testing.T) {
	k := testenv.StartKafka(t)
	rd := testenv.StartRedis(t)
	const prefix = "trace."
	names := k.CreateTopics(t, prefix, topic.Partitions{Events: 2, Deliveries: 2, Other: 1})
	exp := tracetest.NewInMemoryExporter()
	var logs testenv.Output
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("role logs:\n%s", logs.String())
		}
	})

	received := make(chan http.Header, 16)
	var seenMu sync.Mutex
	seen := map[string]bool{}
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		received <- r.Header.Clone()
		seenMu.Lock()
		first := !seen[r.Header.Get(signature.HeaderID)]
		seen[r.Header.Get(signature.HeaderID)] = true
		seenMu.Unlock()
		if first {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(recv.Close)

	apiDeps := traceDeps(t, k, rd, prefix, "hookstream-api", exp, log)
	fanDeps := traceDeps(t, k, rd, prefix, "hookstream-fanout", exp, log)
	delDeps := traceDeps(t, k, rd, prefix, "hookstream-deliverer", exp, log)

	settings := apiSettings{tokens: api.Tokens{"tok": "acme"}, backendTimeout: 10 * time.Second}
	publish, err := kgo.NewClient(apiDeps.kafkaOpts(producer.ClientOpts(settings.backendTimeout)...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(publish.Close)
	pub := producer.New(publish, apiDeps.catalog, producer.WithTopicPrefix(prefix), producer.WithMeterProvider(apiDeps.tel.Meter))
	srv := apiDeps.opsServer("127.0.0.1:0", apiRoutes(newAPI(apiDeps, pub, settings))...)
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	base := "http://" + srv.Addr()
	fan, err := newFanout(fanDeps, defaultFanoutSettings())
	if err != nil {
		t.Fatal(err)
	}
	ds := defaultDelivererSettings()
	ds.allowPrivate, ds.drain = true, time.Second
	// The retry waits longer than the park threshold: it goes through the
	// retries topic.
	ds.schedule, ds.park = deliverer.Schedule{0, 300 * time.Millisecond}, 100*time.Millisecond
	del, err := newDeliverer(delDeps, ds)
	if err != nil {
		t.Fatal(err)
	}
	runWorkers(t, log,
		supervisor.Named{Name: "api endpoints", Worker: apiDeps.store},
		supervisor.Named{Name: "fanout endpoints", Worker: fanDeps.store},
		supervisor.Named{Name: "deliverer endpoints", Worker: delDeps.store},
		supervisor.Named{Name: "http", Worker: srv},
		fan,
		supervisor.Named{Name: "deliverer", Worker: del},
	)

	var ep struct{ ID string }
	testenv.Eventually(t, time.Minute, "endpoint created", func() bool {
		return apiCall(t, http.MethodPost, base+"/v1/endpoints", "tok",
			map[string]any{"url": recv.URL, "events": []string{"agent.*"}}, &ep) == http.StatusCreated
	})
	testenv.Eventually(t, time.Minute, "fanout and deliverer see the endpoint", func() bool {
		ids, err := fanDeps.store.Match(context.Background(), "acme", "agent.created")
		if err != nil || len(ids) != 1 || ids[0] != ep.ID {
			return false
		}
		_, err = delDeps.store.Endpoint(context.Background(), ep.ID)
		return err == nil
	})

	var ev struct{ ID string }
	if code := apiCall(t, http.MethodPost, base+"/v1/events", "tok", map[string]any{
		"event": "agent.created",
		"data":  map[string]any{"agent_id": "agt_1", "name": "n", "model": "m", "created_by": 1},
	}, &ev); code != http.StatusAccepted {
		t.Fatalf("POST /v1/events: %d", code)
	}

	var attempts []http.Header
	for len(attempts) < 2 {
		select {
		case h := <-received:
			if h.Get(signature.HeaderID) == ev.ID {
				attempts = append(attempts, h)
			}
		case <-time.After(time.Minute):
			t.Fatalf("event %s: %d attempts arrived, want 2", ev.ID, len(attempts))
		}
	}
	ingest := findSpan(t, exp, func(s tracetest.SpanStub) bool {
		return service(s) == "hookstream-api" && s.Name == "POST /v1/events" && s.SpanKind == trace.SpanKindServer
	})
	gotTrace := ingest.SpanContext.TraceID()

	// Each POST span is the receiver's parent, and its own parent is the
	// traceparent on the record it was sent from: the fanout's delivery
	// record, then the deliverer's retries record.
	for i, from := range []string{names.Deliveries, names.Retries} {
		if n := len(attempts[i].Values("Traceparent")); n != 1 {
			t.Fatalf("attempt %d: receiver got %d traceparent headers, want 1", i+1, n)
		}
		tid, parent := parseTraceparent(t, attempts[i].Get("Traceparent"))
		if tid != gotTrace {
			t.Fatalf("attempt %d: receiver's trace id %s, ingest span's %s", i+1, tid, gotTrace)
		}
		post := findSpan(t, exp, func(s tracetest.SpanStub) bool {
			return service(s) == "hookstream-deliverer" && s.SpanContext.SpanID() == parent
		})
		if post.SpanKind != trace.SpanKindClient || post.SpanContext.TraceID() != gotTrace {
			t.Errorf("attempt %d: receiver's parent span %q kind %s trace %s; want the deliverer's client span in trace %s",
				i+1, post.Name, post.SpanKind, post.SpanContext.TraceID(), gotTrace)
		}
		rTrace, rSpan := parseTraceparent(t, string(record.Header(recordOf(t, k, from, ev.ID), record.HeaderTrace)))
		if rTrace != gotTrace || post.Parent.SpanID() != rSpan {
			t.Errorf("attempt %d: POST span's parent %s, %s record's traceparent %s-%s; want the record's span as parent",
				i+1, post.Parent.SpanID(), from, rTrace, rSpan)
		}
	}

	// The event record carries one traceparent (the producer's and kotel's
	// injections do not add up) in the ingest trace.
	event := recordOf(t, k, names.Events, ev.ID)
	var tps []string
	for _, h := range event.Headers {
		if h.Key == record.HeaderTrace {
			tps = append(tps, string(h.Value))
		}
	}
	if len(tps) != 1 {
		t.Fatalf("event record has traceparent headers %q, want one", tps)
	}
	if eTrace, _ := parseTraceparent(t, tps[0]); eTrace != gotTrace {
		t.Errorf("event record's trace %s, want %s", eTrace, gotTrace)
	}

	roles := map[string]bool{}
	for _, s := range exp.GetSpans() {
		if s.SpanContext.TraceID() == gotTrace {
			roles[service(s)] = true
		}
	}
	for _, want := range []string{"hookstream-api", "hookstream-fanout", "hookstream-deliverer"} {
		if !roles[want] {
			t.Errorf("no span of %s in trace %s (services in it: %v)", want, gotTrace, roles)
		}
	}
}

// traceDeps builds a role's dependencies as its command does, with
// telemetry exporting to exp under service.
func traceDeps(t *testing.T, k *testenv.Kafka, rd *testenv.Redis, prefix, service string, exp *tracetest.InMemoryExporter, log *slog.Logger) *roleDeps {
	t.Helper()
	tel, err := telemetry.Setup(context.Background(), service, telemetry.WithSpanExporter(exp))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tel.Shutdown(context.Background()) })
	catalog, err := schemas.Load()
	if err != nil {
		t.Fatal(err)
	}
	kc, err := kgo.NewClient(kafkaOpts([]string{k.Addr}, tel)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kc.Close)
	d := &roleDeps{log: log, prefix: prefix, brokers: []string{k.Addr}, kafka: kc, rdb: rd.Client, catalog: catalog, tel: tel}
	d.store = d.newStore(true)
	return d
}

// runWorkers runs workers under a supervisor until the test ends.
func runWorkers(t *testing.T, log *slog.Logger, workers ...supervisor.Named) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := supervisor.Run(ctx, log, 10*time.Second, workers...); err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("workers: %v", err)
		}
	})
	t.Cleanup(func() {
		cancel()
		wg.Wait()
	})
}

func parseTraceparent(t *testing.T, v string) (trace.TraceID, trace.SpanID) {
	t.Helper()
	parts := strings.Split(v, "-")
	if len(parts) != 4 || parts[0] != "00" {
		t.Fatalf("traceparent %q: want 00-<trace id>-<span id>-<flags>", v)
	}
	tid, err1 := trace.TraceIDFromHex(parts[1])
	sid, err2 := trace.SpanIDFromHex(parts[2])
	if err1 != nil || err2 != nil {
		t.Fatalf("traceparent %q: %v %v", v, err1, err2)
	}
	return tid, sid
}

func service(s tracetest.SpanStub) string {
	if s.Resource == nil {
		return ""
	}
	v, _ := s.Resource.Set().Value(attribute.Key("service.name"))
	return v.AsString()
}

// findSpan waits for an exported span matching ok (spans are exported as
// they end, which may be after the receiver answered).
func findSpan(t *testing.T, exp *tracetest.InMemoryExporter, ok func(tracetest.SpanStub) bool) tracetest.SpanStub {
	t.Helper()
	var found tracetest.SpanStub
	testenv.Eventually(t, time.Minute, "span exported", func() bool {
		for _, s := range exp.GetSpans() {
			if ok(s) {
				found = s
				return true
			}
		}
		return false
	})
	return found
}

// recordOf reads topicName for the record of event id (header
// hookstream-event-id on delivery records, the envelope id on events).
func recordOf(t *testing.T, k *testenv.Kafka, topicName, id string) *kgo.Record {
	t.Helper()
	for _, r := range k.ReadAll(t, topicName) {
		if string(record.Header(r, record.HeaderEventID)) == id || strings.Contains(string(r.Value), `"id":"`+id+`"`) {
			return r
		}
	}
	t.Fatalf("no record of %s in %s", id, topicName)
	return nil
}
