package producer_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/hookstream/hookstream/envelope"
	"github.com/hookstream/hookstream/internal/record"
	"github.com/hookstream/hookstream/internal/testenv"
	"github.com/hookstream/hookstream/producer"
	"github.com/hookstream/hookstream/schemas"
)

const (
	created = `{"agent_id":"agt_abc123","name":"Customer Support Bot","model":"gpt-4o","created_by":42}`
	paid    = `{"invoice_id":"inv_12345","amount":49,"currency":"USD"}`
	ts      = "2026-03-04T12:00:00+00:00"
)

var (
	at          = time.Date(2026, 3, 4, 12, 0, 0, 0, time.UTC)
	generatedID = regexp.MustCompile(`^evt_[0-9a-f]{24}$`)
)

func catalog(t testing.TB) *schemas.Catalog {
	t.Helper()
	c, err := schemas.Load()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// start returns a producer on a fresh broker, with its topics created.
func start(t testing.TB, opts ...producer.Option) (*testenv.Kafka, *producer.Producer) {
	t.Helper()
	k := testenv.StartKafka(t)
	p := producer.New(k.Client(t), catalog(t), opts...)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := p.EnsureTopics(ctx); err != nil {
		t.Fatalf("EnsureTopics: %v", err)
	}
	return k, p
}

// traced installs the W3C propagator for the test and returns a context
// carrying a remote span.
func traced(t *testing.T) (context.Context, trace.SpanContext) {
	t.Helper()
	sc := testenv.RemoteSpan(t)
	return trace.ContextWithRemoteSpanContext(context.Background(), sc), sc
}

func headers(r *kgo.Record) map[string]string {
	m := map[string]string{}
	for _, h := range r.Headers {
		if _, dup := m[h.Key]; dup {
			m[h.Key] = "DUPLICATE"
			continue
		}
		m[h.Key] = string(h.Value)
	}
	return m
}

func TestPublishWireFormat(t *testing.T) {
	// The propagator is the producer's, not the global (a no-op here).
	k, p := start(t, producer.WithPropagator(propagation.TraceContext{}))
	ctx, sc := traced(t)
	tests := []struct {
		name   string
		typ    string
		data   string
		opts   []producer.PublishOption
		wantID string // "" = generated
		key    string
	}{
		{"defaults", "agent.created", created, []producer.PublishOption{producer.WithTimestamp(at)}, "", "acme"},
		{"caller id kept", "billing.payment_succeeded", paid,
			[]producer.PublishOption{producer.WithID("order:42"), producer.WithTimestamp(at)}, "order:42", "acme"},
		{"ordering key", "agent.created", created,
			[]producer.PublishOption{producer.WithKey("agt_abc123"), producer.WithTimestamp(at.In(time.FixedZone("X", 3600)))}, "", "agt_abc123"},
		{"data sent as is", "agent.created", `{ "created_by": 42, "model": "gpt-4o", "name": "Bot", "agent_id": "a", "extra": [1.50] }`,
			[]producer.PublishOption{producer.WithTimestamp(at)}, "", "acme"},
	}
	var want []*kgo.Record
	for _, tt := range tests {
		id, err := p.Publish(ctx, "acme", tt.typ, []byte(tt.data), tt.opts...)
		if err != nil {
			t.Fatalf("%s: Publish: %v", tt.name, err)
		}
		if tt.wantID != "" && id != tt.wantID {
			t.Fatalf("%s: id = %q, want %q", tt.name, id, tt.wantID)
		}
		if tt.wantID == "" && !generatedID.MatchString(id) {
			t.Fatalf("%s: generated id %q", tt.name, id)
		}
		value := `{"id":"` + id + `","event":"` + tt.typ + `","timestamp":"` + ts + `","data":` + tt.data + `}`
		want = append(want, &kgo.Record{Key: []byte(tt.key), Value: []byte(value)})
	}

	got := k.ReadAll(t, "hookstream.events")
	if len(got) != len(want) {
		t.Fatalf("read %d records, want %d", len(got), len(want))
	}
	byValue := map[string]*kgo.Record{}
	for _, r := range got {
		byValue[string(r.Value)] = r
	}
	traceparent := fmt.Sprintf("00-%s-%s-01", sc.TraceID(), sc.SpanID())
	for i, w := range want {
		r, ok := byValue[string(w.Value)]
		if !ok {
			t.Fatalf("%s: no record with value %s", tests[i].name, w.Value)
		}
		if !bytes.Equal(r.Key, w.Key) {
			t.Errorf("%s: key = %q, want %q", tests[i].name, r.Key, w.Key)
		}
		h := headers(r)
		wantH := map[string]string{record.HeaderTenant: "acme", "traceparent": traceparent, "tracestate": "vendor=abc"}
		if fmt.Sprint(h) != fmt.Sprint(wantH) {
			t.Errorf("%s: headers = %v, want %v", tests[i].name, h, wantH)
		}
		if _, err := envelope.Decode(r.Value, 0); err != nil {
			t.Errorf("%s: consumers cannot decode the value: %v", tests[i].name, err)
		}
	}
}

func TestPublishWithoutTrace(t *testing.T) {
	k, p := start(t, producer.WithTopicPrefix("other."))
	id, err := p.Publish(context.Background(), "acme", "agent.created", []byte(created))
	if err != nil {
		t.Fatal(err)
	}
	got := k.ReadAll(t, "other.events")
	if len(got) != 1 {
		t.Fatalf("read %d records from other.events, want 1", len(got))
	}
	e, err := envelope.Decode(got[0].Value, 0)
	if err != nil || e.ID != id {
		t.Fatalf("decoded %+v, %v; want id %s", e, err, id)
	}
	if h := headers(got[0]); len(h) != 1 || h[record.HeaderTenant] != "acme" {
		t.Fatalf("headers = %v, want only the tenant", h)
	}
	if d := time.Since(mustTime(t, e.Timestamp)); d < -time.Second || d > time.Minute {
		t.Fatalf("timestamp %s is not now", e.Timestamp)
	}
}

func mustTime(t *testing.T, s string) time.Time {
	t.Helper()
	at, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Fatal(err)
	}
	return at
}

func TestPublishInvalid(t *testing.T) {
	k, p := start(t, producer.WithMaxSize(400))
	big := `{"agent_id":"a","name":"` + strings.Repeat("n", 300) + `","model":"m","created_by":1}`
	huge := `{"agent_id":"a","name":"` + strings.Repeat("n", 500) + `","model":"m","created_by":1}`
	tests := []struct {
		name    string
		tenant  string
		typ     string
		data    string
		opts    []producer.PublishOption
		is      error  // sentinel, or nil
		pointer string // *schemas.ValidationError or *envelope.FieldError pointer
	}{
		{"empty tenant", "", "agent.created", created, nil, producer.ErrInvalidTenant, ""},
		{"admin tenant", "*", "agent.created", created, nil, producer.ErrInvalidTenant, ""},
		{"tenant with space", "ac me", "agent.created", created, nil, producer.ErrInvalidTenant, ""},
		{"tenant too long", strings.Repeat("t", 129), "agent.created", created, nil, producer.ErrInvalidTenant, ""},
		{"unknown type", "acme", "agent.exploded", created, nil, schemas.ErrUnknownType, ""},
		{"empty type", "acme", "", created, nil, schemas.ErrUnknownType, ""},
		{"schema violation", "acme", "billing.payment_succeeded", `{"invoice_id":"i","amount":"49","currency":"USD"}`, nil, nil, "/amount"},
		{"missing required", "acme", "billing.payment_succeeded", `{"invoice_id":"i","currency":"USD"}`, nil, nil, "/amount"},
		{"data not an object", "acme", "agent.created", `[1]`, nil, nil, ""},
		{"malformed data", "acme", "agent.created", `{"agent_id":`, nil, schemas.ErrInvalidJSON, ""},
		{"repeated key in data", "acme", "agent.created", `{"agent_id":"a","name":"n","model":"m","created_by":1,"name":"x"}`, nil, envelope.ErrInvalidField, "/data/name"},
		{"bad id", "acme", "agent.created", created, []producer.PublishOption{producer.WithID("evt 1")}, envelope.ErrInvalidField, "/id"},
		{"envelope too large", "acme", "agent.created", big, nil, envelope.ErrTooLarge, ""},
		{"data too large", "acme", "agent.created", huge, nil, envelope.ErrTooLarge, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, err := p.Publish(context.Background(), tt.tenant, tt.typ, []byte(tt.data), tt.opts...)
			if err == nil {
				t.Fatalf("Publish = %q, nil; want an error", id)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Fatalf("error %v does not wrap %v", err, tt.is)
			}
			var ve *schemas.ValidationError
			var fe *envelope.FieldError
			switch {
			case tt.is == nil:
				if !errors.As(err, &ve) || ve.Pointer != tt.pointer {
					t.Fatalf("error %v: want *schemas.ValidationError at %q", err, tt.pointer)
				}
			case tt.pointer != "":
				if !errors.As(err, &fe) || fe.Pointer != tt.pointer {
					t.Fatalf("error %v: want *envelope.FieldError at %q", err, tt.pointer)
				}
			}
		})
	}
	if got := k.ReadAll(t, "hookstream.events"); len(got) != 0 {
		t.Fatalf("invalid events reached the topic: %d records", len(got))
	}
}

func TestPublishBatch(t *testing.T) {
	k, p := start(t)
	events := []producer.Event{
		{Type: "agent.created", Data: []byte(created), Timestamp: at},
		{Type: "billing.payment_succeeded", Data: []byte(paid), ID: "inv_12345-paid", Key: "inv_12345", Timestamp: at},
		{Type: "agent.created", Data: []byte(created), Key: "agt_abc123", Timestamp: at},
	}
	ids, err := p.PublishBatch(context.Background(), "acme", events)
	if err != nil {
		t.Fatalf("PublishBatch: %v", err)
	}
	if len(ids) != 3 || ids[1] != "inv_12345-paid" || ids[0] == ids[2] || !generatedID.MatchString(ids[0]) || !generatedID.MatchString(ids[2]) {
		t.Fatalf("ids = %q", ids)
	}
	got := k.ReadAll(t, "hookstream.events")
	if len(got) != 3 {
		t.Fatalf("read %d records, want 3", len(got))
	}
	byID := map[string]*kgo.Record{}
	for _, r := range got {
		e, err := envelope.Decode(r.Value, 0)
		if err != nil {
			t.Fatal(err)
		}
		byID[e.ID] = r
	}
	for i, ev := range events {
		r := byID[ids[i]]
		if r == nil {
			t.Fatalf("event %d (%s) not on the topic", i, ids[i])
		}
		want := `{"id":"` + ids[i] + `","event":"` + ev.Type + `","timestamp":"` + ts + `","data":` + string(ev.Data) + `}`
		key := ev.Key
		if key == "" {
			key = "acme"
		}
		if string(r.Value) != want || string(r.Key) != key || headers(r)[record.HeaderTenant] != "acme" {
			t.Errorf("event %d: key %q value %s headers %v; want key %q value %s", i, r.Key, r.Value, headers(r), key, want)
		}
	}

	ids, err = p.PublishBatch(context.Background(), "acme", nil)
	if err != nil || len(ids) != 0 {
		t.Fatalf("empty batch: %q, %v", ids, err)
	}
}

func TestPublishBatchRejectsWhole(t *testing.T) {
	k, p := start(t)
	ok := producer.Event{Type: "agent.created", Data: []byte(created)}
	tests := []struct {
		name   string
		tenant string
		events []producer.Event
		index  int
		check  func(error) bool
	}{
		{"schema violation at 2", "acme", []producer.Event{ok, ok, {Type: "billing.payment_succeeded", Data: []byte(`{"invoice_id":"i","amount":-1,"currency":"USD"}`)}, ok}, 2,
			func(err error) bool {
				var ve *schemas.ValidationError
				return errors.As(err, &ve) && ve.Pointer == "/amount"
			}},
		{"unknown type at 0", "acme", []producer.Event{{Type: "nope", Data: []byte(`{}`)}, ok}, 0,
			func(err error) bool { return errors.Is(err, schemas.ErrUnknownType) }},
		{"bad id at 1", "acme", []producer.Event{ok, {Type: "agent.created", Data: []byte(created), ID: "a/b"}}, 1,
			func(err error) bool { return errors.Is(err, envelope.ErrInvalidField) }},
		{"bad tenant", "", []producer.Event{ok}, 0,
			func(err error) bool { return errors.Is(err, producer.ErrInvalidTenant) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ids, err := p.PublishBatch(context.Background(), tt.tenant, tt.events)
			var be *producer.BatchError
			if !errors.As(err, &be) || be.Index != tt.index || !tt.check(err) {
				t.Fatalf("PublishBatch = %q, %v; want *BatchError at %d with the right cause", ids, err, tt.index)
			}
			if ids != nil {
				t.Fatalf("ids = %q, want none", ids)
			}
		})
	}
	if got := k.ReadAll(t, "hookstream.events"); len(got) != 0 {
		t.Fatalf("a rejected batch reached the topic: %d records", len(got))
	}
}

func TestPublishKafkaDown(t *testing.T) {
	k := testenv.StartKafka(t)
	p := producer.New(k.Client(t, producer.ClientOpts(2*time.Second)...), catalog(t))
	if err := p.EnsureTopics(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Publish(context.Background(), "acme", "agent.created", []byte(created)); err != nil {
		t.Fatal(err)
	}
	k.Server.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	id, err := p.Publish(ctx, "acme", "agent.created", []byte(created))
	if err == nil {
		t.Fatalf("Publish with Kafka down = %q, nil", id)
	}
	var ve *schemas.ValidationError
	var fe *envelope.FieldError
	if errors.As(err, &ve) || errors.As(err, &fe) || errors.Is(err, producer.ErrInvalidTenant) || errors.Is(err, schemas.ErrUnknownType) {
		t.Fatalf("a produce failure looks like a validation error: %v", err)
	}
	if ctx.Err() != nil {
		t.Fatalf("Publish waited for the caller's deadline instead of the delivery timeout: %v", err)
	}
}
