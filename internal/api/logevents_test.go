package api_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hookstream/hookstream/deliverer"
	"github.com/hookstream/hookstream/internal/api"
	"github.com/hookstream/hookstream/internal/deliverylog"
	"github.com/hookstream/hookstream/internal/record"
	"github.com/hookstream/hookstream/internal/testenv"
	"github.com/hookstream/hookstream/topic"
)

// TestEventLogRoutes indexes, through a running indexer, what the
// pipeline writes for two tenants' events, and checks GET /v1/events,
// GET /v1/events/{id} (the envelope read back from Kafka),
// /v1/endpoints/{id}/stats and /dead, tenant isolation and bad input.
func TestEventLogRoutes(t *testing.T) {
	lazy := &lazyLog{}
	var rd *deliverylog.Reader
	lazyReader := readerFunc(func(ctx context.Context, loc deliverylog.Location) ([]byte, error) { return rd.Read(ctx, loc) })
	st := startEndpointsAPI(t, api.WithDeliveryLog(lazy), api.WithEventReader(lazyReader))
	rd = deliverylog.NewReader(kgo.SeedBrokers(st.kafka.Addr))
	names := topic.New("hookstream.")
	x := deliverylog.NewIndexer(deliverylog.IndexerConfig{Seeds: []string{st.kafka.Addr}, Topic: names.Attempts,
		Dead: names.Dead, Matches: names.Matches, Retries: names.Retries, CheckEvery: 100 * time.Millisecond}, st.redis.Client)
	lazy.Index = x.Index()
	testenv.Run(t, x)

	var ok, bad, off, other epView
	epDo(t, "POST", st.base+"/v1/endpoints", "tok-acme", epCreateBody).decode(t, &ok)
	epDo(t, "POST", st.base+"/v1/endpoints", "tok-acme", epCreateBody).decode(t, &bad)
	epDo(t, "POST", st.base+"/v1/endpoints", "tok-acme", epCreateBody).decode(t, &off)
	epDo(t, "POST", st.base+"/v1/endpoints", "tok-admin", `{"tenant":"other","url":"https://1.1.1.1/","events":["*"]}`).decode(t, &other)
	if r := epDo(t, "PATCH", st.base+"/v1/endpoints/"+off.ID, "tok-acme", `{"disabled":true}`); r.status != 200 {
		t.Fatalf("disable: %d %s", r.status, r.body)
	}

	cl := st.kafka.Client(t)
	ctx := context.Background()
	produce := func(rs ...*kgo.Record) []*kgo.Record {
		t.Helper()
		res := cl.ProduceSync(ctx, rs...)
		if err := res.FirstErr(); err != nil {
			t.Fatal(err)
		}
		out := make([]*kgo.Record, len(res))
		for i, r := range res {
			out[i] = r.Record
		}
		return out
	}
	// What the pipeline would write for acme's evt_1 (to ok, bad and the
	// disabled off), acme's evt_2 (matching nothing) and other's evt_3.
	envelope := func(id string) []byte {
		return []byte(`{"id":"` + id + `","event":"agent.created","timestamp":"2026-03-04T12:00:00+00:00","data":{"agent_id":"a1"}}`)
	}
	for _, ev := range []struct {
		tenant, id string
		eps, dis   []string
	}{{"acme", "evt_1", []string{ok.ID, bad.ID}, []string{off.ID}}, {"acme", "evt_2", nil, nil}, {"other", "evt_3", []string{other.ID}, nil}} {
		src := produce(&kgo.Record{Topic: names.Events, Value: envelope(ev.id), Headers: []kgo.RecordHeader{{Key: record.HeaderTenant, Value: []byte(ev.tenant)}}})[0]
		m := record.Match{Tenant: ev.tenant, EventID: ev.id, EventType: "agent.created", Endpoints: ev.eps, Disabled: ev.dis,
			Topic: src.Topic, Partition: src.Partition, Offset: src.Offset, At: src.Timestamp}
		mr, err := m.Record(names.Matches)
		if err != nil {
			t.Fatal(err)
		}
		rs := []*kgo.Record{mr}
		for _, ep := range ev.eps {
			d := record.Delivery{EndpointID: ep, Tenant: ev.tenant, EventID: ev.id, EventType: "agent.created", Body: src.Value}
			rs = append(rs, d.Record(names.Deliveries))
		}
		produce(rs...)
	}
	attempt := func(ep, ev string, n, status int, outcome, class string, ms int64) *kgo.Record {
		tenant := "acme"
		if ep == other.ID {
			tenant = "other"
		}
		v, _ := json.Marshal(deliverer.Attempt{Tenant: tenant, EndpointID: ep, EventID: ev, EventType: "agent.created", Attempt: n,
			Status: status, Outcome: outcome, ErrorClass: class, LatencyMS: ms, Trigger: "scheduled", At: time.Now().UTC()})
		return &kgo.Record{Topic: names.Attempts, Key: []byte(ep), Value: v}
	}
	produce(attempt(ok.ID, "evt_1", 1, 200, "delivered", "", 30), attempt(other.ID, "evt_3", 1, 200, "delivered", "", 30),
		attempt(bad.ID, "evt_1", 1, 500, "failed", "http_status", 100), attempt(bad.ID, "evt_1", 2, 0, "failed", "timeout", 10000))
	dl := record.Delivery{EndpointID: bad.ID, Tenant: "acme", EventID: "evt_1", EventType: "agent.created", Body: envelope("evt_1")}
	produce(record.Dead(dl.Record(names.Deliveries), names.Dead, "retries exhausted: timeout"))

	type eventList struct {
		Data []struct {
			ID, Event, Status string
			Timestamp         *time.Time
		}
		Next, Prev *string
		Window     struct{ Since, Until time.Time }
	}
	list := func(path, token string) (epReply, eventList) {
		t.Helper()
		r := epDo(t, "GET", st.base+path, token, "")
		var l eventList
		if r.status == 200 {
			r.decode(t, &l)
		}
		return r, l
	}
	testenv.Eventually(t, 20*time.Second, "evt_1 dead in the list", func() bool {
		_, l := list("/v1/events", "tok-acme")
		return len(l.Data) == 2 && l.Data[1].Status == "dead"
	})
	r, all := list("/v1/events", "tok-acme")
	if all.Data[0].ID != "evt_2" || all.Data[0].Status != "no_endpoints" || all.Data[0].Timestamp == nil || all.Window.Since.IsZero() {
		t.Errorf("acme's events: %s", r.body)
	}
	filters := []struct {
		query string
		want  int
	}{
		{"status=no_endpoints", 1}, {"status=dead", 1}, {"status=delivered", 0}, {"type=agent.created", 2}, {"type=call.started", 0},
		{"endpoint=" + off.ID, 1}, {"limit=1", 1}, {"until=2020-01-01T00:00:00Z", 0},
	}
	for _, f := range filters {
		if r, l := list("/v1/events?"+f.query, "tok-acme"); r.status != 200 || len(l.Data) != f.want {
			t.Errorf("?%s: %d %s, want %d events", f.query, r.status, r.body, f.want)
		}
	}
	_, first := list("/v1/events?limit=1", "tok-acme")
	if first.Next == nil {
		t.Fatal("no next after 1 of 2")
	}
	if r, rest := list("/v1/events?limit=1&cursor="+*first.Next, "tok-acme"); r.status != 200 || len(rest.Data) != 1 || rest.Data[0].ID != "evt_1" {
		t.Errorf("second page: %d %s", r.status, r.body)
	}

	var ev struct {
		Event struct {
			ID   string
			Data map[string]string
		}
		Status     string
		Deliveries []struct {
			EndpointID    string     `json:"endpoint_id"`
			Status        string     `json:"status"`
			Attempts      int        `json:"attempts"`
			NextAttemptAt *time.Time `json:"next_attempt_at"`
			Error         string     `json:"error"`
		}
	}
	r = epDo(t, "GET", st.base+"/v1/events/evt_1", "tok-acme", "")
	if r.status != 200 {
		t.Fatalf("GET evt_1: %d %s", r.status, r.body)
	}
	r.decode(t, &ev)
	if ev.Event.ID != "evt_1" || ev.Event.Data["agent_id"] != "a1" || ev.Status != "dead" || len(ev.Deliveries) != 3 {
		t.Errorf("GET evt_1: %s, want the envelope read back and 3 deliveries", r.body)
	}
	want := map[string]string{ok.ID: "delivered", bad.ID: "dead", off.ID: "canceled"}
	for _, d := range ev.Deliveries {
		if d.Status != want[d.EndpointID] || (d.EndpointID == bad.ID && (d.Attempts != 2 || d.Error == "")) {
			t.Errorf("delivery %+v, want %s", d, want[d.EndpointID])
		}
	}

	var stats struct {
		Delivered, Failed, Dead int
		SuccessRate             *float64 `json:"success_rate"`
		State                   string
		FailingSince            *time.Time               `json:"failing_since"`
		LatencyMS               struct{ P50, P99 int64 } `json:"latency_ms"`
	}
	r = epDo(t, "GET", st.base+"/v1/endpoints/"+bad.ID+"/stats?window=1h", "tok-acme", "")
	if r.status != 200 {
		t.Fatalf("stats: %d %s", r.status, r.body)
	}
	r.decode(t, &stats)
	if stats.Failed != 2 || stats.Dead != 1 || stats.SuccessRate == nil || *stats.SuccessRate != 0 || stats.State != "failing" || stats.FailingSince == nil || stats.LatencyMS.P99 < 8000 {
		t.Errorf("bad's stats: %s", r.body)
	}
	r = epDo(t, "GET", st.base+"/v1/endpoints/"+off.ID+"/stats", "tok-acme", "")
	if r.decode(t, &stats); r.status != 200 || stats.State != "disabled" || stats.SuccessRate != nil {
		t.Errorf("off's stats: %d %s", r.status, r.body)
	}
	var dead struct {
		Data []struct {
			EventID string `json:"event_id"`
			Error   string
		}
	}
	r = epDo(t, "GET", st.base+"/v1/endpoints/"+bad.ID+"/dead", "tok-acme", "")
	if r.decode(t, &dead); r.status != 200 || len(dead.Data) != 1 || dead.Data[0].EventID != "evt_1" || dead.Data[0].Error != "retries exhausted: timeout" {
		t.Errorf("bad's dead: %d %s", r.status, r.body)
	}

	// Tenant isolation: another tenant's event, endpoints and cursors are
	// 404; the admin token sees each tenant it names.
	for _, c := range []struct{ path, token string }{
		{"/v1/events/evt_1", "tok-other"},
		{"/v1/events/evt_3", "tok-acme"},
		{"/v1/events?cursor=" + *first.Next, "tok-other"},
		{"/v1/events?endpoint=" + ok.ID, "tok-other"},
		{"/v1/endpoints/" + bad.ID + "/stats", "tok-other"},
		{"/v1/endpoints/" + bad.ID + "/dead", "tok-other"},
		{"/v1/endpoints/" + other.ID + "/dead", "tok-acme"},
		{"/v1/events/evt_1?tenant=other", "tok-admin"},
	} {
		if r := epDo(t, "GET", st.base+c.path, c.token, ""); r.status != http.StatusNotFound {
			t.Errorf("%s as %s: %d %s, want 404", c.path, c.token, r.status, r.body)
		}
	}
	// The endpoint filter's 404 names the filter and the id asked for.
	if r := epDo(t, "GET", st.base+"/v1/events?endpoint="+ok.ID, "tok-other", ""); !strings.Contains(string(r.body), `"field":"/endpoint"`) || !strings.Contains(string(r.body), ok.ID) {
		t.Errorf("another tenant's endpoint as a filter: %s, want the field /endpoint and the id", r.body)
	}
	if _, l := list("/v1/events", "tok-other"); len(l.Data) != 1 || l.Data[0].ID != "evt_3" {
		t.Errorf("other's events: %+v, want evt_3 only", l.Data)
	}
	for _, c := range []struct{ path, id string }{{"/v1/events?tenant=acme", "evt_1"}, {"/v1/events?tenant=other", "evt_3"}} {
		if r, l := list(c.path, "tok-admin"); r.status != 200 || len(l.Data) == 0 || l.Data[len(l.Data)-1].ID != c.id {
			t.Errorf("admin %s: %d %s", c.path, r.status, r.body)
		}
	}
	if r := epDo(t, "GET", st.base+"/v1/events/evt_3?tenant=other", "tok-admin", ""); r.status != 200 {
		t.Errorf("admin GET other's event: %d %s", r.status, r.body)
	}

	for _, b := range []struct{ path, field string }{
		{"/v1/events?status=lost", "/status"},
		{"/v1/events?since=never", "/since"},
		{"/v1/events?cursor=garbage", "/cursor"},
		{"/v1/endpoints/" + bad.ID + "/stats?window=-1h", "/window"},
		{"/v1/endpoints/" + bad.ID + "/dead?limit=0", "/limit"},
	} {
		r := epDo(t, "GET", st.base+b.path, "tok-acme", "")
		if code, field := r.errorField(t); r.status != http.StatusBadRequest || code != api.CodeInvalid || field != b.field {
			t.Errorf("%s: %d %s, want 400 naming %s", b.path, r.status, r.body, b.field)
		}
	}
}

type readerFunc func(ctx context.Context, loc deliverylog.Location) ([]byte, error)

func (f readerFunc) Read(ctx context.Context, loc deliverylog.Location) ([]byte, error) {
	return f(ctx, loc)
}
