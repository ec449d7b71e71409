package api_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/encoding/json"

	"github.com/hookstream/hookstream/envelope"
	"github.com/hookstream/hookstream/internal/api"
	"github.com/hookstream/hookstream/internal/kafkaserver"
	"github.com/hookstream/hookstream/internal/record"
	"github.com/hookstream/hookstream/internal/testenv"
	"github.com/hookstream/hookstream/producer"
	"github.com/hookstream/hookstream/schemas"
)

const (
	eventsTopic = "hookstream.events"
	created     = `{"agent_id":"agt_abc123","name":"Customer Support Bot","model":"gpt-4o","created_by":42}`
	paid        = `{"invoice_id":"inv_12345","amount":49,"currency":"USD"}`
)

var generatedID = regexp.MustCompile(`^evt_[0-9a-f]{24}$`)

var tokens = api.Tokens{"tok-acme": "acme", "tok-other": "other", "tok-admin": api.AdminTenant}

// ingest is an API server publishing through a real producer to a real
// embedded broker.
type ingest struct {
	kafka *testenv.Kafka
	url   string
}

func startIngest(t *testing.T, k *testenv.Kafka, opts ...api.Option) *ingest {
	t.Helper()
	cat, err := schemas.Load()
	if err != nil {
		t.Fatal(err)
	}
	const timeout = 2 * time.Second
	p := producer.New(k.Client(t, producer.ClientOpts(timeout)...), cat)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := p.EnsureTopics(ctx); err != nil {
		t.Fatal(err)
	}
	s := api.New(append([]api.Option{api.WithTokens(tokens), api.WithCatalog(cat), api.WithPublisher(p),
		api.WithBackendTimeout(timeout), api.WithLogger(slog.New(slog.DiscardHandler))}, opts...)...)
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	return &ingest{kafka: k, url: srv.URL}
}

type reply struct {
	status int
	ID     string   `json:"id"`
	IDs    []string `json:"ids"`
	Error  struct {
		Code    string `json:"code"`
		Message string `json:"message"`
		Field   string `json:"field"`
	} `json:"error"`
}

func post(t *testing.T, url, token, body string) reply {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	checkExchange(t, req, body, resp.StatusCode, b)
	var r reply
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("reply %d is not JSON: %q", resp.StatusCode, b)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("content-type %q", ct)
	}
	r.status = resp.StatusCode
	return r
}

func ev(typ, data string, extra ...string) string {
	return `{"event":"` + typ + `","data":` + data + strings.Join(extra, "") + `}`
}

func TestPublishEventsRejects(t *testing.T) {
	in := startIngest(t, testenv.StartKafka(t), api.WithMaxBody(512<<10))
	url := in.url + "/v1/events"
	bad := ev("billing.payment_succeeded", `{"invoice_id":"inv_1","amount":"49","currency":"USD"}`)
	ok := ev("agent.created", created)
	batch := func(items ...string) string { return "[" + strings.Join(items, ",") + "]" }
	many := make([]string, api.MaxBatch+1)
	for i := range many {
		many[i] = ok
	}
	tests := []struct {
		name   string
		token  string
		query  string
		body   string
		status int
		code   string
		field  string
	}{
		{"no token", "", "", ok, 401, api.CodeUnauthorized, ""},
		{"wrong token", "tok-nope", "", ok, 401, api.CodeUnauthorized, ""},
		{"malformed JSON", "tok-acme", "", `{"event":"agent.created","data":{`, 400, api.CodeMalformed, ""},
		{"trailing garbage", "tok-acme", "", ok + `x`, 400, api.CodeMalformed, ""},
		{"not an object", "tok-acme", "", `"agent.created"`, 400, api.CodeMalformed, ""},
		{"empty batch", "tok-acme", "", `[]`, 400, api.CodeInvalid, ""},
		{"batch item not an object", "tok-acme", "", batch(ok, `7`), 400, api.CodeMalformed, "/1"},
		{"missing event", "tok-acme", "", `{"data":` + created + `}`, 400, api.CodeInvalid, "/event"},
		{"event not a string", "tok-acme", "", `{"event":1,"data":` + created + `}`, 400, api.CodeInvalid, "/event"},
		{"missing data", "tok-acme", "", `{"event":"agent.created"}`, 400, api.CodeInvalid, "/data"},
		{"operational type", "tok-acme", "", `{"event":"endpoint.disabled","data":{"endpoint_id":"ep_1","tenant":"acme","url":"https://example.com/h","reason":"x","failing_since":"2026-03-04T12:00:00Z","disabled_at":"2026-03-04T12:00:00Z"}}`, 422, api.CodeInvalid, "/event"},
		{"operational type in a batch", "tok-acme", "", batch(ok, `{"event":"endpoint.disabled","data":{}}`), 422, api.CodeInvalid, "/1/event"},
		{"operational attempt.exhausted", "tok-acme", "", `{"event":"attempt.exhausted","data":{}}`, 422, api.CodeInvalid, "/event"},
		{"unknown field", "tok-acme", "", ev("agent.created", created, `,"payload":{}`), 400, api.CodeInvalid, "/payload"},
		{"bad id", "tok-acme", "", ev("agent.created", created, `,"id":"evt 1"`), 400, api.CodeInvalid, "/id"},
		{"empty id", "tok-acme", "", ev("agent.created", created, `,"id":""`), 422, api.CodeInvalid, "/id"},
		{"empty id in a batch", "tok-acme", "", batch(ok, ev("agent.created", created, `,"id":""`)), 422, api.CodeInvalid, "/1/id"},
		{"repeated event key", "tok-acme", "", `{"event":"agent.created","event":"agent.deployed","data":` + created + `}`, 400, api.CodeMalformed, "/event"},
		{"repeated id, same value", "tok-acme", "", ev("agent.created", created, `,"id":"a","id":"a"`), 400, api.CodeMalformed, "/id"},
		{"repeated key spelled with an escape", "tok-acme", "", ev("agent.created", created, `,"id":"a","\u0069d":"b"`), 400, api.CodeMalformed, "/id"},
		{"repeated key in data", "tok-acme", "", ev("billing.payment_succeeded", `{"invoice_id":"inv_1","amount":-1,"amount":49,"currency":"USD"}`), 400, api.CodeMalformed, "/data/amount"},
		{"repeated key deep in a batch", "tok-acme", "", batch(ok, ev("agent.created", `{"agent_id":"a","name":"n","model":"m","created_by":1,"tags":[{},{"a/b":1,"a/b":2}]}`)), 400, api.CodeMalformed, "/1/data/tags/1/a~1b"},
		{"unknown event type", "tok-acme", "", ev("agent.exploded", created), 422, api.CodeUnknownType, "/event"},
		{"schema violation", "tok-acme", "", bad, 422, api.CodeSchemaViolation, "/data/amount"},
		{"missing required data field", "tok-acme", "", ev("billing.payment_succeeded", `{"invoice_id":"inv_1","amount":1}`), 422, api.CodeSchemaViolation, "/data/currency"},
		{"data not an object", "tok-acme", "", ev("agent.created", `[1]`), 422, api.CodeSchemaViolation, "/data"},
		{"data null", "tok-acme", "", ev("agent.created", `null`), 422, api.CodeSchemaViolation, "/data"},
		{"batch with one bad event", "tok-acme", "", batch(ok, ok, ok, bad, ok), 422, api.CodeSchemaViolation, "/3/data/amount"},
		{"batch with unknown type", "tok-acme", "", batch(ok, ev("nope.nope", `{}`)), 422, api.CodeUnknownType, "/1/event"},
		{"event over the size limit", "tok-acme", "", ev("agent.created", `{"agent_id":"a","name":"`+strings.Repeat("n", envelope.DefaultMaxSize)+`","model":"m","created_by":1}`), 413, api.CodeTooLarge, "/data"},
		{"body over the limit", "tok-acme", "", batch(ev("agent.created", `{"agent_id":"a","name":"`+strings.Repeat("n", 600<<10)+`","model":"m","created_by":1}`), ok), 413, api.CodeTooLarge, ""},
		{"batch over 500", "tok-acme", "", batch(many...), 413, api.CodeTooLarge, ""},
		{"token for another tenant", "tok-acme", "", ev("agent.created", created, `,"tenant":"other"`), 403, api.CodeForbidden, "/tenant"},
		{"admin names no tenant", "tok-admin", "", ok, 400, api.CodeInvalid, "/tenant"},
		{"admin names a bad tenant", "tok-admin", "?tenant=a%20b", ok, 400, api.CodeInvalid, "/tenant"},
		{"batch names two tenants", "tok-admin", "", batch(ev("agent.created", created, `,"tenant":"a"`), ev("agent.created", created, `,"tenant":"b"`)), 400, api.CodeInvalid, "/1/tenant"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := post(t, url+tt.query, tt.token, tt.body)
			if r.status != tt.status || r.Error.Code != tt.code || r.Error.Field != tt.field {
				t.Fatalf("got %d %q field %q (%s); want %d %q field %q",
					r.status, r.Error.Code, r.Error.Field, r.Error.Message, tt.status, tt.code, tt.field)
			}
			if r.Error.Message == "" {
				t.Fatal("error without a message")
			}
			if r.ID != "" || r.IDs != nil {
				t.Fatalf("rejected request returned ids %q %q", r.ID, r.IDs)
			}
		})
	}
	if got := in.kafka.ReadAll(t, eventsTopic); len(got) != 0 {
		t.Fatalf("rejected requests put %d records on the topic", len(got))
	}
}

func TestPublishEventsAccepts(t *testing.T) {
	in := startIngest(t, testenv.StartKafka(t))
	url := in.url + "/v1/events"
	type want struct {
		tenant, key, typ, data string
	}
	wants := map[string]want{} // by event id

	r := post(t, url, "tok-acme", ev("agent.created", created))
	if r.status != 202 || !generatedID.MatchString(r.ID) || r.IDs != nil {
		t.Fatalf("single: %+v", r)
	}
	wants[r.ID] = want{"acme", "acme", "agent.created", created}

	r = post(t, url, "tok-acme", "[\n"+ev("agent.created", created)+",\n"+
		ev("billing.payment_succeeded", paid, `,"id":"inv_12345:paid","key":"inv_12345"`)+",\n"+
		ev("agent.created", created, `,"tenant":"acme"`)+"]")
	if r.status != 202 || len(r.IDs) != 3 || r.IDs[1] != "inv_12345:paid" || !generatedID.MatchString(r.IDs[0]) || r.ID != "" {
		t.Fatalf("batch: %+v", r)
	}
	wants[r.IDs[0]] = want{"acme", "acme", "agent.created", created}
	wants[r.IDs[1]] = want{"acme", "inv_12345", "billing.payment_succeeded", paid}
	wants[r.IDs[2]] = want{"acme", "acme", "agent.created", created}

	r = post(t, url+"?tenant=beta", "tok-admin", ev("agent.created", created))
	if r.status != 202 {
		t.Fatalf("admin ?tenant: %+v", r)
	}
	wants[r.ID] = want{"beta", "beta", "agent.created", created}
	r = post(t, url, "tok-admin", `[`+ev("billing.payment_succeeded", paid, `,"tenant":"gamma"`)+`]`)
	if r.status != 202 || len(r.IDs) != 1 {
		t.Fatalf("admin body tenant: %+v", r)
	}
	wants[r.IDs[0]] = want{"gamma", "gamma", "billing.payment_succeeded", paid}

	got := in.kafka.ReadAll(t, eventsTopic)
	if len(got) != len(wants) {
		t.Fatalf("read %d records, want %d", len(got), len(wants))
	}
	for _, rec := range got {
		e, err := envelope.Decode(rec.Value, 0)
		if err != nil {
			t.Fatalf("record value: %v", err)
		}
		w, ok := wants[e.ID]
		if !ok {
			t.Fatalf("unexpected event %s", e.ID)
		}
		delete(wants, e.ID)
		if e.Event != w.typ || string(e.Data) != w.data || string(rec.Key) != w.key ||
			string(record.Header(rec, record.HeaderTenant)) != w.tenant {
			t.Errorf("event %s: type %s data %s key %q tenant %q; want %+v",
				e.ID, e.Event, e.Data, rec.Key, record.Header(rec, record.HeaderTenant), w)
		}
	}
}

func TestEventTypes(t *testing.T) {
	in := startIngest(t, testenv.StartKafka(t))
	cat, err := schemas.Load()
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(in.url + "/v1/event-types") // public: no token
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Data []struct {
			Name        string          `json:"name"`
			Description string          `json:"description"`
			Schema      json.RawMessage `json:"schema"`
			Example     json.RawMessage `json:"example"`
			Envelope    json.RawMessage `json:"envelope"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	types := cat.Types()
	if resp.StatusCode != 200 || len(body.Data) != len(types) || len(types) == 0 {
		t.Fatalf("status %d, %d types, want %d", resp.StatusCode, len(body.Data), len(types))
	}
	for i, got := range body.Data {
		w := types[i]
		var schema struct {
			Title string `json:"title"`
		}
		if err := json.Unmarshal(got.Schema, &schema); err != nil || schema.Title != w.Name {
			t.Errorf("%s: schema title %q (%v)", w.Name, schema.Title, err)
		}
		if got.Name != w.Name || got.Description != w.Description || got.Description == "" {
			t.Errorf("entry %d: %q %q, want %q %q", i, got.Name, got.Description, w.Name, w.Description)
		}
		if err := cat.Validate(got.Name, got.Example); err != nil {
			t.Errorf("%s: example does not validate: %v", w.Name, err)
		}
		if e, err := envelope.Decode(got.Envelope, 0); err != nil || e.Event != w.Name {
			t.Errorf("%s: envelope example %s: %v", w.Name, got.Envelope, err)
		}
	}
}

// TestPublishEventsKafkaDown stops the broker, expects 503, then starts a
// new broker on the same address and data directory and checks that the
// refused event never reaches the topic, even though the API's Kafka client
// lives on and reconnects.
func TestPublishEventsKafkaDown(t *testing.T) {
	dir := t.TempDir()
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(testenv.FreePort(t)))
	k := testenv.StartKafka(t, kafkaserver.WithAddr(addr), kafkaserver.WithDataDir(dir))
	in := startIngest(t, k)
	url := in.url + "/v1/events"

	if r := post(t, url, "tok-acme", ev("agent.created", created, `,"id":"before"`)); r.status != 202 {
		t.Fatalf("before the outage: %+v", r)
	}
	k.Server.Close()
	for _, body := range []string{
		ev("agent.created", created, `,"id":"during-1"`),
		`[` + ev("agent.created", created, `,"id":"during-2"`) + `,` + ev("billing.payment_succeeded", paid, `,"id":"during-3","key":"k"`) + `]`,
	} {
		r := post(t, url, "tok-acme", body)
		if r.status != 503 || r.Error.Code != api.CodeUnavailable || r.ID != "" || r.IDs != nil {
			t.Fatalf("with Kafka down: %+v", r)
		}
	}

	k2 := testenv.StartKafka(t, kafkaserver.WithAddr(addr), kafkaserver.WithDataDir(dir))
	// The same client publishes after the restart, once with each ordering
	// key the refused events had: anything it still held for their
	// partitions would be written before these, so once they are acked the
	// topic shows every late write there could be.
	for _, body := range []string{
		ev("agent.created", created, `,"id":"after"`),
		ev("billing.payment_succeeded", paid, `,"id":"after-k","key":"k"`),
	} {
		testenv.Eventually(t, 30*time.Second, "the API to accept events after Kafka restarted", func() bool {
			return post(t, url, "tok-acme", body).status == 202
		})
	}
	var ids []string
	for _, rec := range k2.ReadAll(t, eventsTopic) {
		e, err := envelope.Decode(rec.Value, 0)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, e.ID)
	}
	slices.Sort(ids)
	if got := fmt.Sprint(ids); got != "[after after-k before]" {
		t.Fatalf("events on the topic after the outage: %s, want after, after-k and before", got)
	}
}
