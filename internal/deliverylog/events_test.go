package deliverylog_test

import (
	"context"
	"errors"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hookstream/hookstream/deliverer"
	"github.com/hookstream/hookstream/internal/deliverylog"
	"github.com/hookstream/hookstream/internal/record"
	"github.com/hookstream/hookstream/internal/testenv"
)

// produceRecords writes records and waits for the acks.
func (e *env) produceRecords(t *testing.T, rs ...*kgo.Record) []*kgo.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res := e.prod.ProduceSync(ctx, rs...)
	if err := res.FirstErr(); err != nil {
		t.Fatal(err)
	}
	out := make([]*kgo.Record, len(res))
	for i, r := range res {
		out[i] = r.Record
	}
	return out
}

// match writes fanout's record of an event (and its delivery records) as
// fanout would, the event itself at partition 0, offset n.
func (e *env) match(t *testing.T, tenant, id, typ string, n int64, at time.Time, eps, disabled []string) {
	t.Helper()
	m := record.Match{Tenant: tenant, EventID: id, EventType: typ, Endpoints: eps, Disabled: disabled,
		Topic: e.topics.Events, Partition: 0, Offset: n, At: at}
	r, err := m.Record(e.topics.Matches)
	if err != nil {
		t.Fatal(err)
	}
	rs := []*kgo.Record{r}
	for _, ep := range eps {
		d := record.Delivery{EndpointID: ep, Tenant: tenant, EventID: id, EventType: typ, Body: []byte(`{}`)}
		rs = append(rs, d.Record(e.topics.Deliveries))
	}
	e.produceRecords(t, rs...)
}

// TestEventStatuses follows events through every status the log shows:
// an event to a healthy endpoint, one failing to dead, a parked one and a
// disabled one, and an event that matched nothing.
func TestEventStatuses(t *testing.T) {
	e := newEnv(t)
	x := e.indexer(t)
	testenv.Run(t, x)
	ix := x.Index()
	ctx := context.Background()
	t0 := time.Now().Add(-time.Minute).UTC().Truncate(time.Millisecond)
	e.match(t, "acme", "evt_a", "agent.created", 1, t0, []string{"ep_ok", "ep_bad", "ep_slow"}, []string{"ep_off"})
	e.match(t, "acme", "evt_none", "call.started", 2, t0.Add(time.Second), nil, nil)
	e.match(t, "acme", "evt_b", "agent.deployed", 3, t0.Add(2*time.Second), []string{"ep_ok"}, nil)
	e.match(t, "globex", "evt_g", "agent.created", 4, t0.Add(3*time.Second), nil, nil)

	e.produce(t, "acme", "ep_ok", 2, func(i int, a *deliverer.Attempt) { a.EventID, a.LatencyMS = []string{"evt_a", "evt_b"}[i], 40 })
	e.produce(t, "acme", "ep_bad", 2, func(i int, a *deliverer.Attempt) {
		a.EventID, a.Attempt, a.Status, a.Outcome, a.ErrorClass, a.LatencyMS = "evt_a", i+1, 500, "failed", "http_status", 900
	})
	e.produce(t, "acme", "ep_slow", 1, func(_ int, a *deliverer.Attempt) {
		a.EventID, a.Outcome, a.Status, a.ErrorClass = "evt_a", "failed", 0, "timeout"
	})
	src := record.Delivery{EndpointID: "ep_bad", Tenant: "acme", EventID: "evt_a", EventType: "agent.created", Body: []byte(`{}`)}
	e.produceRecords(t, record.Dead(src.Record(e.topics.Deliveries), e.topics.Dead, "retries exhausted: 500"))
	due := time.Now().Add(time.Hour).UTC().Truncate(time.Millisecond)
	parked := record.Delivery{EndpointID: "ep_slow", Tenant: "acme", EventID: "evt_a", EventType: "agent.created", Body: []byte(`{}`), Attempt: 1, NotBefore: due}
	e.produceRecords(t, parked.Record(e.topics.Retries))

	want := map[string]string{"ep_ok": deliverylog.StatusDelivered, "ep_bad": deliverylog.StatusDead,
		"ep_slow": deliverylog.StatusParked, "ep_off": deliverylog.StatusCanceled}
	var ev deliverylog.Event
	testenv.Eventually(t, 20*time.Second, "evt_a's deliveries settled", func() bool {
		var err error
		ev, err = ix.Event(ctx, "acme", "evt_a")
		if err != nil || len(ev.Deliveries) != 4 {
			return false
		}
		for _, d := range ev.Deliveries {
			if d.Status != want[d.EndpointID] {
				return false
			}
		}
		return true
	})
	if ev.Status != deliverylog.StatusDead || !ev.At.Equal(t0) || ev.Source != (deliverylog.Location{Topic: e.topics.Events, Partition: 0, Offset: 1}) {
		t.Errorf("evt_a: %+v, want dead, at %v, from %s/0/1", ev, t0, e.topics.Events)
	}
	for _, d := range ev.Deliveries {
		switch d.EndpointID {
		case "ep_bad":
			if d.Attempts != 2 || d.LastStatusCode != 500 || d.DeadReason == "" || !d.NextAttemptAt.IsZero() {
				t.Errorf("dead delivery %+v", d)
			}
		case "ep_slow":
			if !d.NextAttemptAt.Equal(due) || d.Attempts != 1 {
				t.Errorf("parked delivery %+v, next attempt want %v", d, due)
			}
		case "ep_off":
			if d.CancelReason != deliverylog.ReasonDisabled {
				t.Errorf("disabled delivery %+v", d)
			}
		}
	}
	var none deliverylog.Event
	testenv.Eventually(t, 20*time.Second, "evt_none indexed", func() bool {
		none, _ = ix.Event(ctx, "acme", "evt_none")
		return none.Status == deliverylog.EventNoEndpoints
	})
	if len(none.Deliveries) != 0 {
		t.Errorf("evt_none has deliveries %+v", none.Deliveries)
	}

	ids := func(q deliverylog.EventQuery) []string {
		t.Helper()
		pg, err := ix.Events(ctx, "acme", q)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, ev := range pg.Data {
			out = append(out, ev.ID)
		}
		return out
	}
	testenv.Eventually(t, 20*time.Second, "evt_b delivered", func() bool {
		return slices.Equal(ids(deliverylog.EventQuery{Status: deliverylog.StatusDelivered}), []string{"evt_b"})
	})
	lists := []struct {
		name string
		q    deliverylog.EventQuery
		want []string
	}{
		{"all, newest first", deliverylog.EventQuery{}, []string{"evt_b", "evt_none", "evt_a"}},
		{"type", deliverylog.EventQuery{Type: "agent.created"}, []string{"evt_a"}},
		{"status no_endpoints", deliverylog.EventQuery{Status: deliverylog.EventNoEndpoints}, []string{"evt_none"}},
		{"status dead", deliverylog.EventQuery{Status: deliverylog.StatusDead}, []string{"evt_a"}},
		{"endpoint", deliverylog.EventQuery{Endpoint: "ep_ok"}, []string{"evt_b", "evt_a"}},
		{"disabled endpoint", deliverylog.EventQuery{Endpoint: "ep_off"}, []string{"evt_a"}},
		{"since", deliverylog.EventQuery{Since: t0.Add(time.Second)}, []string{"evt_b", "evt_none"}},
		{"until", deliverylog.EventQuery{Until: t0.Add(time.Second)}, []string{"evt_none", "evt_a"}},
	}
	for _, l := range lists {
		if got := ids(l.q); !slices.Equal(got, l.want) {
			t.Errorf("%s: %v, want %v", l.name, got, l.want)
		}
	}
	pg, err := ix.Events(ctx, "acme", deliverylog.EventQuery{Limit: 2})
	if err != nil || len(pg.Data) != 2 || pg.Next == "" {
		t.Fatalf("first page of 2: %d, next %q, %v", len(pg.Data), pg.Next, err)
	}
	if rest, err := ix.Events(ctx, "acme", deliverylog.EventQuery{Limit: 2, Cursor: pg.Next}); err != nil || len(rest.Data) != 1 || rest.Data[0].ID != "evt_a" {
		t.Errorf("second page: %+v, %v", rest.Data, err)
	}
	if _, err := ix.Events(ctx, "globex", deliverylog.EventQuery{Cursor: pg.Next}); !errors.Is(err, deliverylog.ErrNotFound) {
		t.Errorf("acme's cursor as globex: %v, want ErrNotFound", err)
	}
	if g, _ := ix.Events(ctx, "globex", deliverylog.EventQuery{}); len(g.Data) != 1 || g.Data[0].ID != "evt_g" {
		t.Errorf("globex's events: %+v, want only evt_g", g.Data)
	}

	dead, err := ix.DeadDeliveries(ctx, "acme", "ep_bad", deliverylog.EventQuery{})
	if err != nil || len(dead.Data) != 1 || dead.Data[0].ID != "evt_a" || dead.Data[0].Deliveries[0].DeadReason != "retries exhausted: 500" {
		t.Errorf("dead of ep_bad: %+v, %v", dead.Data, err)
	}
	for ep, n := range map[string]int{"ep_bad": 1, "ep_slow": 1, "ep_ok": 0, "ep_off": 0} {
		got, err := ix.Unfinished(ctx, "acme", ep, t0.Add(-time.Minute), time.Time{})
		if err != nil || len(got) != n {
			t.Errorf("Unfinished(%s) = %+v, %v; want %d", ep, got, err, n)
		}
		if n == 1 && (got[0].EventID != "evt_a" || got[0].Source.Offset != 1) {
			t.Errorf("Unfinished(%s) = %+v", ep, got[0])
		}
	}

	st, err := ix.EndpointStats(ctx, "acme", "ep_bad", time.Hour)
	if err != nil || st.Failed != 2 || st.Delivered != 0 || st.Dead != 1 || st.SuccessRate != 0 || st.FailingSince.IsZero() || st.P99MS < 720 || st.P99MS > 1080 {
		t.Errorf("ep_bad stats %+v, %v; want 2 failed, 1 dead, failing, p99 about 900ms", st, err)
	}
	st, err = ix.EndpointStats(ctx, "acme", "ep_ok", time.Hour)
	if err != nil || st.Delivered != 2 || st.SuccessRate != 1 || !st.FailingSince.IsZero() || st.P50MS < 32 || st.P50MS > 48 {
		t.Errorf("ep_ok stats %+v, %v; want 2 delivered, healthy, p50 about 40ms", st, err)
	}

	// A resend after the dead letter starts again at attempt 1: its
	// success outranks both the dead letter and the higher-numbered
	// attempts before it.
	e.produce(t, "acme", "ep_bad", 1, func(_ int, a *deliverer.Attempt) {
		a.EventID, a.Trigger, a.At = "evt_a", "resend", time.Now().Add(time.Second).UTC()
	})
	testenv.Eventually(t, 20*time.Second, "ep_bad's resent delivery delivered", func() bool {
		ev, err := ix.Event(ctx, "acme", "evt_a")
		d, ok := ev.Delivery("ep_bad")
		return err == nil && ok && d.Status == deliverylog.StatusDelivered && d.Attempts == 1
	})
}

// TestDeliveringStatus: a request announced as in flight shows its
// delivery as delivering until its attempt's record arrives, whichever
// record Kafka holds first; it is never listed as an attempt.
func TestDeliveringStatus(t *testing.T) {
	e := newEnv(t)
	x := e.indexer(t)
	testenv.Run(t, x)
	ix := x.Index()
	ctx := context.Background()
	e.match(t, "acme", "evt_f", "agent.created", 1, time.Now().UTC(), []string{"ep_first", "ep_retry", "ep_late"}, nil)
	attempt := func(n int, outcome string) func(int, *deliverer.Attempt) {
		return func(_ int, a *deliverer.Attempt) {
			a.EventID, a.Attempt, a.Outcome = "evt_f", n, outcome
			if outcome != "delivered" {
				a.Status = 0
			}
		}
	}
	e.produce(t, "acme", "ep_first", 1, attempt(1, deliverer.OutcomeDelivering))
	e.produce(t, "acme", "ep_retry", 1, attempt(1, "failed"))
	e.produce(t, "acme", "ep_retry", 1, attempt(2, deliverer.OutcomeDelivering))
	// The attempt's own record first, the announcement after it.
	e.produce(t, "acme", "ep_late", 1, attempt(1, "delivered"))
	e.produce(t, "acme", "ep_late", 1, attempt(1, deliverer.OutcomeDelivering))

	statuses := func(ev deliverylog.Event) map[string]string {
		m := map[string]string{"event": ev.Status}
		for _, d := range ev.Deliveries {
			m[d.EndpointID] = d.Status
		}
		return m
	}
	want := map[string]string{"event": deliverylog.EventFailing, "ep_first": deliverylog.StatusDelivering,
		"ep_retry": deliverylog.StatusDelivering, "ep_late": deliverylog.StatusDelivered}
	var got map[string]string
	testenv.Eventually(t, 20*time.Second, "in-flight deliveries indexed", func() bool {
		ev, err := ix.Event(ctx, "acme", "evt_f")
		got = statuses(ev)
		return err == nil && maps.Equal(got, want)
	})
	pg, err := ix.EndpointAttempts(ctx, "acme", "ep_first", deliverylog.Query{})
	if err != nil || len(pg.Data) != 0 {
		t.Errorf("ep_first lists %d attempts (%v), want none: an announcement is not an attempt", len(pg.Data), err)
	}

	e.produce(t, "acme", "ep_first", 1, attempt(1, "delivered"))
	e.produce(t, "acme", "ep_retry", 1, attempt(2, "delivered"))
	want = map[string]string{"event": deliverylog.StatusDelivered, "ep_first": deliverylog.StatusDelivered,
		"ep_retry": deliverylog.StatusDelivered, "ep_late": deliverylog.StatusDelivered}
	testenv.Eventually(t, 20*time.Second, "in-flight deliveries ended", func() bool {
		ev, err := ix.Event(ctx, "acme", "evt_f")
		got = statuses(ev)
		return err == nil && maps.Equal(got, want)
	})
}
