package fanout_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/plugin/kotel"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/hookstream/hookstream/envelope"
	"github.com/hookstream/hookstream/fanout"
	"github.com/hookstream/hookstream/internal/record"
	"github.com/hookstream/hookstream/producer"
	"github.com/hookstream/hookstream/schemas"
	"github.com/hookstream/hookstream/subscription"
)

func TestMatching(t *testing.T) { t.Parallel(); bothRedis(t, 3, testMatching) }

func testMatching(t *testing.T, r *rig) {
	ctx := traced(t)

	exact := r.endpoint(t, "acme", "agent.created")
	prefixed := r.endpoint(t, "acme", "agent.*")
	all := r.endpoint(t, "acme", "*")
	billing := r.endpoint(t, "acme", "billing.*", "call.ended")
	disabled := r.endpoint(t, "acme", "*")
	deleted := r.endpoint(t, "acme", "*")
	other := r.endpoint(t, "globex", "agent.created")
	yes := true
	if _, err := r.api.Update(ctx, "acme", disabled, subscription.Patch{Disabled: &yes}); err != nil {
		t.Fatal(err)
	}
	if err := r.api.Delete(ctx, "acme", deleted); err != nil {
		t.Fatal(err)
	}

	type published struct{ id, tenant, typ string }
	var events []published
	for _, e := range []struct{ tenant, typ string }{
		{"acme", "agent.created"},
		{"acme", "agent.deployed"},
		{"globex", "agent.created"},
		{"acme", "call.started"},
		{"acme", "agent.created"},
		{"acme", "billing.payment_failed"},
		{"globex", "agent.deployed"},
		{"acme", "call.ended"},
		{"acme", "agent.created"},
		{"initech", "agent.created"},
	} {
		events = append(events, published{r.publish(t, ctx, e.tenant, e.typ), e.tenant, e.typ})
	}
	r.start(t, nil)
	r.waitProcessed(t)

	// Which endpoint gets which event, by tenant and type.
	gets := map[string]func(tenant, typ string) bool{
		exact:    func(tn, ty string) bool { return tn == "acme" && ty == "agent.created" },
		prefixed: func(tn, ty string) bool { return tn == "acme" && strings.HasPrefix(ty, "agent.") },
		all:      func(tn, _ string) bool { return tn == "acme" },
		billing: func(tn, ty string) bool {
			return tn == "acme" && (strings.HasPrefix(ty, "billing.") || ty == "call.ended")
		},
		disabled: func(string, string) bool { return false },
		deleted:  func(string, string) bool { return false },
		other:    func(tn, ty string) bool { return tn == "globex" && ty == "agent.created" },
	}
	want := map[string]int{}
	wantOrder := map[string][]string{}
	for _, e := range events {
		for ep, f := range gets {
			if f(e.tenant, e.typ) {
				want[pair(e.id, ep)] = 1
				wantOrder[ep] = append(wantOrder[ep], e.id)
			}
		}
	}

	ds := r.deliveries(t)
	if got := pairs(ds); !maps.Equal(got, want) {
		t.Fatalf("deliveries (event -> endpoint: count):%s\nwant:%s", describe(got), describe(want))
	}
	order := map[string][]string{}
	for _, d := range ds {
		order[d.EndpointID] = append(order[d.EndpointID], d.EventID)
	}
	for ep, ids := range wantOrder {
		if !slices.Equal(order[ep], ids) {
			t.Errorf("endpoint %s got events in order %v, want %v", ep, order[ep], ids)
		}
	}

	bodies := map[string][]byte{}
	var trace, state string
	for _, rec := range r.kafka.ReadAll(t, r.names.Events) {
		e, err := envelope.Decode(rec.Value, 0)
		if err != nil {
			t.Fatal(err)
		}
		bodies[e.ID] = rec.Value
		trace, state = header(rec.Headers, record.HeaderTrace), header(rec.Headers, record.HeaderTraceMeta)
	}
	if trace == "" || state == "" {
		t.Fatalf("published events carry no trace headers (traceparent %q, tracestate %q)", trace, state)
	}
	for _, d := range ds {
		e := events[slices.IndexFunc(events, func(e published) bool { return e.id == d.EventID })]
		switch {
		case !bytes.Equal(d.Body, bodies[d.EventID]):
			t.Errorf("delivery %s body\n%s\nwant the published envelope\n%s", pair(d.EventID, d.EndpointID), d.Body, bodies[d.EventID])
		case d.Tenant != e.tenant || d.EventType != e.typ:
			t.Errorf("delivery %s: tenant %q type %q, want %q %q", pair(d.EventID, d.EndpointID), d.Tenant, d.EventType, e.tenant, e.typ)
		case string(d.rec.Key) != d.EndpointID:
			t.Errorf("delivery %s keyed %q, want the endpoint id", pair(d.EventID, d.EndpointID), d.rec.Key)
		case header(d.Trace, record.HeaderTrace) != trace || header(d.Trace, record.HeaderTraceMeta) != state:
			t.Errorf("delivery %s trace headers %v, want traceparent %q tracestate %q", pair(d.EventID, d.EndpointID), d.Trace, trace, state)
		}
	}
	if dead := r.kafka.ReadAll(t, r.names.Dead); len(dead) != 0 {
		t.Errorf("%d valid events were dead-lettered, first: %s", len(dead), record.Header(dead[0], record.HeaderReason))
	}
}

func TestPoisonDeadLettered(t *testing.T) {
	t.Parallel()
	r := newRig(t, 1)
	ep := r.endpoint(t, "acme", "*")
	tenant := []kgo.RecordHeader{{Key: record.HeaderTenant, Value: []byte("acme")}}
	good := func(id string) *kgo.Record {
		return &kgo.Record{Key: []byte("acme"), Headers: tenant, Value: []byte(
			`{"id":"` + id + `","event":"agent.created","timestamp":"2026-03-04T12:00:00+00:00","data":{"agent_id":"a","name":"n","model":"m","created_by":1}}`)}
	}
	tests := []struct {
		name   string
		rec    *kgo.Record
		reason string // prefix of the hookstream-reason header
	}{
		{"not JSON", &kgo.Record{Headers: tenant, Value: []byte(`not json at all`)}, "envelope: malformed JSON"},
		{"no tenant header", &kgo.Record{Value: good("evt_x").Value}, "no hookstream-tenant header"},
		{"unknown type", &kgo.Record{Headers: tenant, Value: []byte(
			`{"id":"evt_u","event":"agent.exploded","timestamp":"2026-03-04T12:00:00+00:00","data":{}}`)}, "unknown_event_type agent.exploded"},
		{"schema violation", &kgo.Record{Headers: tenant, Value: []byte(
			`{"id":"evt_s","event":"agent.created","timestamp":"2026-03-04T12:00:00+00:00","data":{"agent_id":"a","name":"n","model":"m","created_by":"bob"}}`)}, "schema_violation /created_by: "},
		{"missing id", &kgo.Record{Headers: tenant, Value: []byte(
			`{"event":"agent.created","timestamp":"2026-03-04T12:00:00+00:00","data":{"agent_id":"a","name":"n","model":"m","created_by":1}}`)}, "envelope: missing field: /id"},
		{"empty value", &kgo.Record{Headers: tenant}, "envelope: malformed JSON"},
		// What the producer (and so the API) refuses is dead-lettered too.
		{"repeated key in data", &kgo.Record{Headers: tenant, Value: []byte(
			`{"id":"evt_r","event":"agent.created","timestamp":"2026-03-04T12:00:00+00:00","data":{"agent_id":"a","name":"n","model":"m","created_by":1,"name":"m"}}`)}, "repeated_key /data/name"},
		{"invalid tenant", &kgo.Record{Headers: []kgo.RecordHeader{{Key: record.HeaderTenant, Value: []byte("bad tenant!")}}, Value: good("evt_t").Value}, "invalid hookstream-tenant header"},
		{"two tenant headers", &kgo.Record{Headers: append(slices.Clone(tenant), kgo.RecordHeader{Key: record.HeaderTenant, Value: []byte("other")}), Value: good("evt_2").Value}, "2 hookstream-tenant headers"},
	}
	// Each bad record is followed by a good one, all in one partition.
	var wantGood []string
	for i, tt := range tests {
		id := "evt_good" + strconv.Itoa(i)
		r.produceRaw(t, tt.rec, good(id))
		wantGood = append(wantGood, id)
	}
	// Trace headers need not be adjacent.
	withTrace := good("evt_traced")
	withTrace.Headers = []kgo.RecordHeader{
		{Key: record.HeaderTrace, Value: []byte("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")},
		tenant[0],
		{Key: record.HeaderTraceMeta, Value: []byte("vendor=abc")},
	}
	r.produceRaw(t, withTrace)
	wantGood = append(wantGood, "evt_traced")
	r.start(t, nil)
	r.waitProcessed(t)

	dead := r.kafka.ReadAll(t, r.names.Dead)
	if len(dead) != len(tests) {
		t.Fatalf("%d dead letters, want %d", len(dead), len(tests))
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := dead[i]
			reason := string(record.Header(d, record.HeaderReason))
			if !strings.HasPrefix(reason, tt.reason) {
				t.Errorf("reason %q, want it to start with %q", reason, tt.reason)
			}
			if !bytes.Equal(d.Value, tt.rec.Value) {
				t.Errorf("dead letter value %q, want the original %q", d.Value, tt.rec.Value)
			}
			if src := string(record.Header(d, record.HeaderSource)); src != r.names.Events+"/0/"+strconv.Itoa(2*i) {
				t.Errorf("source %q, want %s/0/%d", src, r.names.Events, 2*i)
			}
		})
	}
	var got []string
	for _, d := range r.deliveries(t) {
		if d.EndpointID != ep {
			t.Errorf("delivery to unknown endpoint %s", d.EndpointID)
		}
		got = append(got, d.EventID)
		if d.EventID == "evt_traced" && (header(d.Trace, record.HeaderTrace) != string(withTrace.Headers[0].Value) ||
			header(d.Trace, record.HeaderTraceMeta) != "vendor=abc" || len(d.Trace) != 2) {
			t.Errorf("trace headers of evt_traced: %v, want traceparent and tracestate", d.Trace)
		}
	}
	if !slices.Equal(got, wantGood) {
		t.Errorf("delivered %v, want every good event in order %v", got, wantGood)
	}
}

// failingOnce fails the first Match after arm, then delegates to the real
// store: Redis failing after the batch's dedupe claims were made.
type failingOnce struct {
	*subscription.Store
	armed  atomic.Bool
	failed atomic.Int32
}

func (f *failingOnce) Match(ctx context.Context, tenant, eventType string) ([]string, error) {
	if f.armed.CompareAndSwap(true, false) {
		f.failed.Add(1)
		return nil, errors.New("injected: redis went away")
	}
	return f.Store.Match(ctx, tenant, eventType)
}

func TestDedupe(t *testing.T) { t.Parallel(); bothRedis(t, 2, testDedupe) }

func testDedupe(t *testing.T, r *rig) {
	ctx := ctxFor(t, 60*time.Second)
	acme := r.endpoint(t, "acme", "*")
	globex := r.endpoint(t, "globex", "*")

	// Claims left by a process that crashed after claiming: one by the
	// record itself (not a duplicate), one by another record (duplicate).
	r.publish(t, ctx, "acme", "agent.created", producer.WithID("crashed-self"))
	r.publish(t, ctx, "acme", "agent.created", producer.WithID("claimed-elsewhere"))
	rdb := r.rdb()
	defer rdb.Close()
	for _, rec := range r.kafka.ReadAll(t, r.names.Events) {
		id := "crashed-self"
		val := strconv.Itoa(int(rec.Partition)) + ":" + strconv.FormatInt(rec.Offset, 10)
		if bytes.Contains(rec.Value, []byte("claimed-elsewhere")) {
			id, val = "claimed-elsewhere", "99:12345"
		}
		if err := rdb.Set(ctx, "hookstream:dedupe:4:acme:"+id, val, time.Hour).Err(); err != nil {
			t.Fatal(err)
		}
	}
	// The same id twice for one tenant, and once for another.
	r.publish(t, ctx, "acme", "agent.created", producer.WithID("order-42"))
	r.publish(t, ctx, "acme", "agent.deployed", producer.WithID("order-42"))
	r.publish(t, ctx, "globex", "agent.created", producer.WithID("order-42"))

	m := &failingOnce{Store: r.store(t)}
	r.start(t, m)
	r.waitProcessed(t)

	// An event whose batch is aborted after its claim is made is
	// fanned out when the batch is replayed.
	m.armed.Store(true)
	r.publish(t, ctx, "acme", "agent.created", producer.WithID("aborted-once"))
	r.waitProcessed(t)
	if m.failed.Load() != 1 {
		t.Fatalf("the injected Match failure happened %d times, want 1", m.failed.Load())
	}

	want := map[string]int{
		pair("crashed-self", acme): 1,
		pair("order-42", acme):     1,
		pair("order-42", globex):   1,
		pair("aborted-once", acme): 1,
	}
	if got := pairs(r.deliveries(t)); !maps.Equal(got, want) {
		t.Fatalf("deliveries:%s\nwant:%s", describe(got), describe(want))
	}
	// The first order-42 of acme won: it is an agent.created.
	for _, d := range r.deliveries(t) {
		if d.EventID == "order-42" && d.Tenant == "acme" && d.EventType != "agent.created" {
			t.Errorf("acme's order-42 delivered as %s, want the first one (agent.created)", d.EventType)
		}
	}
}

func TestReadYourWrites(t *testing.T) { t.Parallel(); bothRedis(t, 2, testReadYourWrites) }

func testReadYourWrites(t *testing.T, r *rig) {
	ctx := ctxFor(t, 90*time.Second)
	r.start(t, nil)
	// The fanout's store has now cached "no endpoint" for this tenant/type.
	r.publish(t, ctx, "acme", "agent.created")
	r.waitProcessed(t)

	want := map[string]int{}
	for range 5 {
		ep := r.endpoint(t, "acme", "agent.created")
		created := r.publish(t, ctx, "acme", "agent.created")
		want[pair(created, ep)] = 1
		// Until fanout processed it, a delete would legitimately win.
		r.waitProcessed(t)
		if err := r.api.Delete(ctx, "acme", ep); err != nil {
			t.Fatal(err)
		}
		r.publish(t, ctx, "acme", "agent.created") // after the delete: nobody
		// Else the next endpoint could get it: an endpoint may get events
		// published before it was created when fanout is behind.
		r.waitProcessed(t)
	}
	if got := pairs(r.deliveries(t)); !maps.Equal(got, want) {
		t.Fatalf("deliveries:%s\nwant (each endpoint gets exactly the event published between its create and delete):%s", describe(got), describe(want))
	}
}

// TestRedisFlushMidStream empties Redis twice while fanout runs, and
// changes endpoints while the cache is being rebuilt: every event reaches
// exactly the endpoints that matched it when it was published. Several
// tenants and types, and endpoints that are created, updated, disabled and
// deleted after fanout cached their matches, make a stale in-process cache
// (a Refresh that dropped nothing) or a rebuild that lost a write show up
// as missing or stray pairs.
func TestRedisFlushMidStream(t *testing.T) { t.Parallel(); bothRedis(t, 3, testRedisFlushMidStream) }

func testRedisFlushMidStream(t *testing.T, r *rig) {
	ctx := ctxFor(t, 120*time.Second)

	type endpoint struct{ tenant, filter string }
	subs := map[string]endpoint{} // the enabled endpoints as they are now
	add := func(tenant, filter string) string {
		id := r.endpoint(t, tenant, filter)
		subs[id] = endpoint{tenant, filter}
		return id
	}
	add("acme", "*")
	add("acme", "agent.*")
	add("acme", "call.*")
	add("acme", "billing.*")
	updated := add("acme", "agent.created")
	disabled := add("acme", "agent.*")
	deleted := add("acme", "call.started")
	add("globex", "*")
	add("globex", "agent.created")

	types := []string{"agent.created", "agent.deployed", "call.started", "call.ended", "billing.payment_failed"}
	want := map[string]int{}
	// publish publishes n events in batches of 10, each batch of the next
	// tenant of tenants and cycling through types, and expects each event
	// to reach the endpoints of subs that match it now.
	publish := func(n int, tenants ...string) {
		t.Helper()
		for i := 0; i < n; i += 10 {
			tenant := tenants[i/10%len(tenants)]
			var batch []producer.Event
			for j := i; j < min(i+10, n); j++ {
				typ := types[j%len(types)]
				batch = append(batch, producer.Event{Type: typ, Data: r.example(t, typ), Key: "k" + strconv.Itoa(j%7)})
			}
			ids, err := r.pub.PublishBatch(ctx, tenant, batch)
			if err != nil {
				t.Fatal(err)
			}
			for k, id := range ids {
				for ep, e := range subs {
					if e.tenant == tenant && schemas.MatchFilter(e.filter, batch[k].Type) {
						want[pair(id, ep)] = 1
					}
				}
			}
		}
	}
	// waitPast waits until fanout committed more than done events.
	waitPast := func(done int64) int64 {
		t.Helper()
		for {
			if now := r.committed(t); now > done {
				return now
			}
			time.Sleep(5 * time.Millisecond)
		}
	}

	r.start(t, nil)
	publish(150, "acme", "globex")
	done := waitPast(0)
	r.flushAll(t)
	t.Logf("first flush at committed offsets summing to %d (150 events published)", done)
	publish(150, "acme", "globex")
	r.waitProcessed(t)

	// Fanout has cached acme's matches; only globex events are in flight
	// while Redis is flushed again and acme's endpoints change.
	before := r.committed(t)
	publish(100, "globex")
	done = waitPast(before)
	r.flushAll(t)
	t.Logf("second flush at committed offsets %d past the first phase (100 events published)", done-before)
	add("acme", "agent.deployed")
	if _, err := r.api.Update(ctx, "acme", updated, subscription.Patch{Events: []string{"call.ended"}}); err != nil {
		t.Fatal(err)
	}
	subs[updated] = endpoint{"acme", "call.ended"}
	if err := r.api.Disable(ctx, disabled, "failing for days"); err != nil {
		t.Fatal(err)
	}
	delete(subs, disabled)
	if err := r.api.Delete(ctx, "acme", deleted); err != nil {
		t.Fatal(err)
	}
	delete(subs, deleted)
	publish(100, "globex")
	publish(300, "acme", "globex")
	r.waitProcessed(t)

	got := pairs(r.deliveries(t))
	if !maps.Equal(got, want) {
		var missing, extra []string
		for k := range want {
			if got[k] == 0 {
				missing = append(missing, k)
			}
		}
		for k, v := range got {
			for range v - want[k] {
				extra = append(extra, k)
			}
		}
		slices.Sort(missing)
		slices.Sort(extra)
		t.Fatalf("got %d distinct pairs, want %d: %d missing, %d duplicates or strays\nmissing, first: %v\nduplicates or strays, first: %v",
			len(got), len(want), len(missing), len(extra), missing[:min(5, len(missing))], extra[:min(5, len(extra))])
	}
}

// TestTraceThroughKotel: with franz-go's tracing hooks on fanout's client,
// each delivery continues the publisher's trace (same trace id, fanout's own
// span) instead of starting a new one.
func TestTraceThroughKotel(t *testing.T) {
	t.Parallel()
	r := newRig(t, 1)
	ep := r.endpoint(t, "acme", "*")
	id := r.publish(t, traced(t), "acme", "agent.created")
	var published string
	for _, rec := range r.kafka.ReadAll(t, r.names.Events) {
		published = header(rec.Headers, record.HeaderTrace)
	}
	tp := sdktrace.NewTracerProvider()
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	hooks := kotel.NewKotel(kotel.WithTracer(kotel.NewTracer(
		kotel.TracerProvider(tp), kotel.TracerPropagator(propagation.TraceContext{}))))
	r.startOn(t, r.names, fanout.Group, r.store(t), []kgo.Opt{kgo.WithHooks(hooks.Hooks()...)})
	r.waitProcessed(t)

	ds := r.deliveries(t)
	if len(ds) != 1 || ds[0].EventID != id || ds[0].EndpointID != ep {
		t.Fatalf("deliveries %v, want one of %s to %s", pairs(ds), id, ep)
	}
	got := header(ds[0].Trace, record.HeaderTrace)
	// version-traceid-spanid-flags
	if len(got) != 55 || got[3:35] != published[3:35] || got[36:52] == published[36:52] {
		t.Errorf("delivery traceparent %q, want the trace of the published event %q with fanout's span", got, published)
	}
	if n := strings.Count(fmt.Sprint(ds[0].Trace), record.HeaderTrace); n != 1 {
		t.Errorf("delivery has %d traceparent headers, want 1: %v", n, ds[0].Trace)
	}
	if st := header(ds[0].Trace, record.HeaderTraceMeta); st != "vendor=abc" {
		t.Errorf("delivery tracestate %q, want vendor=abc", st)
	}
}

// TestRedisRestartMidStream: Redis (no persistence) crashes while events
// stream in, stays down a while, and comes back empty. Fanout neither
// drops the events that arrived meanwhile nor sends them to no one: every
// event reaches exactly the endpoints that match it.
func TestRedisRestartMidStream(t *testing.T) {
	t.Parallel()
	r := newRig(t, 3)
	ctx := ctxFor(t, 120*time.Second)
	type endpoint struct{ tenant, filter string }
	subs := map[string]endpoint{}
	for _, e := range []endpoint{{"acme", "*"}, {"acme", "agent.*"}, {"acme", "call.*"}, {"globex", "*"}} {
		subs[r.endpoint(t, e.tenant, e.filter)] = e
	}
	types := []string{"agent.created", "call.started", "billing.payment_failed"}
	want := map[string]int{}
	publish := func(n int) {
		t.Helper()
		for i := range n {
			tenant := []string{"acme", "globex"}[i%2]
			typ := types[i%len(types)]
			id, err := r.pub.Publish(ctx, tenant, typ, r.example(t, typ))
			if err != nil {
				t.Fatal(err)
			}
			for ep, e := range subs {
				if e.tenant == tenant && schemas.MatchFilter(e.filter, typ) {
					want[pair(id, ep)] = 1
				}
			}
		}
	}
	r.start(t, nil)
	publish(60)
	r.waitProcessed(t)
	r.redis.Stop()
	publish(60) // into Kafka while Redis is down
	time.Sleep(2 * time.Second)
	r.redis.Restart(t)
	publish(60)
	r.waitProcessed(t)
	if got := pairs(r.deliveries(t)); !maps.Equal(got, want) {
		missing, extra := 0, 0
		for k := range want {
			if got[k] == 0 {
				missing++
			}
		}
		for k, v := range got {
			extra += v - want[k]
		}
		t.Fatalf("%d distinct pairs delivered, want %d: %d missing, %d duplicates or strays", len(got), len(want), missing, extra)
	}
}
