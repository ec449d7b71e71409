package cli

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/encoding/json"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hookstream/hookstream/deliverer"
	"github.com/hookstream/hookstream/internal/record"
	"github.com/hookstream/hookstream/internal/testenv"
	"github.com/hookstream/hookstream/topic"
)

// TestEventLogCommands runs `hookstream api` and `hookstream indexer` on
// embedded Kafka and a real Redis, writes what the pipeline would for an
// event that went dead and one that matched nothing, and reads them back
// with `events list|get` and `endpoints stats|dead`, as tables and JSON.
func TestEventLogCommands(t *testing.T) {
	k := testenv.StartKafka(t)
	r := testenv.StartRedis(t)
	base, _ := startRole(t, "api", map[string]string{"HOOKSTREAM_API_TOKENS": "tok=acme"},
		"--kafka-brokers", k.Addr, "--redis-url", r.URL, "--http-addr", freeAddr(t), "--shutdown-grace", "2s")
	startRole(t, "indexer", nil, "--kafka-brokers", k.Addr, "--redis-url", r.URL, "--http-addr", freeAddr(t), "--shutdown-grace", "2s")
	run := apiCLI(t, base, "tok")
	code, out, errOut := run("endpoints", "create", "--url", "https://93.184.215.14/hook", "--events", "agent.*")
	if code != 0 {
		t.Fatalf("create exited %d: %s", code, errOut)
	}
	var ep struct{ ID string }
	if err := json.Unmarshal([]byte(out), &ep); err != nil {
		t.Fatal(err)
	}

	names := topic.New(topic.DefaultPrefix)
	cl := k.Client(t)
	ctx := context.Background()
	produce := func(rs ...*kgo.Record) *kgo.Record {
		t.Helper()
		res := cl.ProduceSync(ctx, rs...)
		if err := res.FirstErr(); err != nil {
			t.Fatal(err)
		}
		return res[0].Record
	}
	for _, ev := range []struct {
		id, typ string
		eps     []string
	}{{"evt_1", "agent.created", []string{ep.ID}}, {"evt_2", "call.started", nil}} {
		src := produce(&kgo.Record{Topic: names.Events, Value: []byte(`{"id":"` + ev.id + `","event":"` + ev.typ + `","timestamp":"2026-03-04T12:00:00+00:00","data":{}}`),
			Headers: []kgo.RecordHeader{{Key: record.HeaderTenant, Value: []byte("acme")}}})
		m := record.Match{Tenant: "acme", EventID: ev.id, EventType: ev.typ, Endpoints: ev.eps, Topic: src.Topic, Partition: src.Partition, Offset: src.Offset, At: src.Timestamp}
		mr, err := m.Record(names.Matches)
		if err != nil {
			t.Fatal(err)
		}
		produce(mr)
	}
	a, _ := json.Marshal(deliverer.Attempt{Tenant: "acme", EndpointID: ep.ID, EventID: "evt_1", EventType: "agent.created", Attempt: 1,
		Status: 503, Outcome: "failed", ErrorClass: "http_status", LatencyMS: 12, Trigger: "scheduled", At: time.Now().UTC()})
	produce(&kgo.Record{Topic: names.Attempts, Key: []byte(ep.ID), Value: a})
	d := record.Delivery{EndpointID: ep.ID, Tenant: "acme", EventID: "evt_1", EventType: "agent.created", Body: []byte(`{}`)}
	produce(record.Dead(d.Record(names.Deliveries), names.Dead, "retries exhausted: 503"))

	testenv.Eventually(t, 30*time.Second, "both events listed, evt_1 dead", func() bool {
		_, out, _ := run("events", "list")
		return strings.Contains(out, "2 events, window") && strings.Contains(out, "dead")
	})
	_, out, _ = run("events", "list")
	lines := strings.Split(out, "\n")
	if !strings.HasPrefix(lines[0], "TIMESTAMP") || !strings.Contains(lines[1], "evt_2") || !strings.Contains(lines[1], "no_endpoints") || !strings.Contains(lines[2], "evt_1") {
		t.Errorf("events list:\n%s", out)
	}
	code, out, errOut = run("events", "list", "--status", "no_endpoints", "--json")
	var page struct{ Data []struct{ ID string } }
	if code != 0 || json.Unmarshal([]byte(out), &page) != nil || len(page.Data) != 1 || page.Data[0].ID != "evt_2" {
		t.Errorf("events list --status no_endpoints --json: exit %d, %s %s", code, out, errOut)
	}
	code, out, errOut = run("events", "get", "evt_1")
	if code != 0 || !strings.Contains(out, "evt_1 agent.created: dead") || !strings.Contains(out, "retries exhausted: 503") || !strings.Contains(out, "NEXT ATTEMPT") {
		t.Errorf("events get: exit %d\n%s%s", code, out, errOut)
	}
	code, out, errOut = run("endpoints", "stats", ep.ID, "--window", "2h")
	if code != 0 || !strings.Contains(out, "state            failing") && !strings.Contains(out, "failing since") || !strings.Contains(out, "success rate     0.0%") {
		t.Errorf("endpoints stats: exit %d\n%s%s", code, out, errOut)
	}
	code, out, errOut = run("endpoints", "dead", ep.ID)
	if code != 0 || !strings.Contains(out, "evt_1") || !strings.Contains(out, "1 dead deliveries") {
		t.Errorf("endpoints dead: exit %d\n%s%s", code, out, errOut)
	}
	code, out, errOut = run("endpoints", "stats", ep.ID, "--json")
	var st struct{ Failed, Dead int }
	if code != 0 || json.Unmarshal([]byte(out), &st) != nil || st.Failed != 1 || st.Dead != 1 {
		t.Errorf("endpoints stats --json: exit %d, %s %s", code, out, errOut)
	}

	bad := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"events"}, 2, "events list"},
		{[]string{"events", "list", "--status", "lost"}, 1, "/status"},
		{[]string{"endpoints", "stats", ep.ID, "--window", "soon"}, 1, "/window"},
		{[]string{"endpoints", "stats"}, 2, "missing the endpoint id"},
		{[]string{"endpoints", "dead"}, 2, "missing the endpoint id"},
		{[]string{"endpoints", "dead", "ep_nope"}, 1, "404"},
	}
	for _, b := range bad {
		if code, _, errOut := run(b.args...); code != b.code || !strings.Contains(errOut, b.want) {
			t.Errorf("%v: exit %d, %q; want %d naming %q", b.args, code, errOut, b.code, b.want)
		}
	}
}
