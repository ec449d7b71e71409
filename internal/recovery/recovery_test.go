package recovery_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hookstream/hookstream/deliverer"
	"github.com/hookstream/hookstream/internal/record"
	"github.com/hookstream/hookstream/internal/recovery"
	"github.com/hookstream/hookstream/internal/testenv"
	"github.com/hookstream/hookstream/schemas"
	"github.com/hookstream/hookstream/subscription"
	"github.com/hookstream/hookstream/topic"
)

type env struct {
	k      *testenv.Kafka
	names  topic.Names
	store  *subscription.Store
	svc    *recovery.Service
	cl     *kgo.Client
	stopSv func() error
	// maxLead is the Config.MaxLead of the Services start builds.
	maxLead int64
	// tweak, when set, changes the Config of the Services start builds.
	tweak func(*recovery.Config)
}

func newEnv(t *testing.T, maxLead ...int64) *env {
	t.Helper()
	k := testenv.StartKafka(t)
	prefix := strings.ToLower(strings.NewReplacer("/", ".", "_", "").Replace(t.Name())) + "."
	names := k.CreateTopics(t, prefix, topic.Partitions{Events: 4, Deliveries: 3, Other: 1})
	r := testenv.StartRedis(t)
	catalog, err := schemas.Load()
	if err != nil {
		t.Fatal(err)
	}
	cl := k.Client(t)
	store := subscription.NewStore(cl, r.Client, catalog, subscription.WithTopicPrefix(prefix), subscription.WithAllowPrivate(true))
	testenv.Run(t, store)
	e := &env{k: k, names: names, store: store, cl: cl}
	if len(maxLead) > 0 {
		e.maxLead = maxLead[0]
	}
	e.start(t)
	return e
}

// start runs a new Service (a new runner) on the same topics.
func (e *env) start(t *testing.T) {
	t.Helper()
	cfg := recovery.Config{
		Topics:     e.names,
		ClientOpts: []kgo.Opt{kgo.SeedBrokers(e.k.Addr)},
		GroupOpts:  []kgo.Opt{kgo.SessionTimeout(6 * time.Second), kgo.HeartbeatInterval(time.Second)},
		Endpoints:  e.store,
		Step:       100 * time.Millisecond,
		MaxLead:    e.maxLead,
	}
	if e.tweak != nil {
		e.tweak(&cfg)
	}
	svc, err := recovery.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(svc.Close)
	e.svc = svc
	e.stopSv = testenv.Run(t, svc)
	select {
	case <-svc.Loaded():
	case <-time.After(30 * time.Second):
		t.Fatal("the jobs topic was not read within 30s")
	}
}

func (e *env) endpoint(t *testing.T, tenant string, events ...string) string {
	t.Helper()
	ep, err := e.store.Create(context.Background(), tenant, subscription.EndpointInput{URL: "http://127.0.0.1:9/hook", Events: events})
	if err != nil {
		t.Fatal(err)
	}
	return ep.ID
}

// event is one event the test wrote to the events topic.
type event struct {
	id, tenant, typ string
	at              time.Time
}

// publish writes n events straight to the events topic, as any Kafka
// client may, with timestamps 1ms apart from base, spread over the
// partitions by key, alternating two tenants and two types.
func (e *env) publish(t *testing.T, n int, base time.Time) []event {
	t.Helper()
	var evs []event
	var recs []*kgo.Record
	for i := range n {
		ev := event{id: fmt.Sprintf("evt_%024x", i+1), tenant: []string{"acme", "other"}[i%2],
			typ: []string{"agent.created", "call.started"}[(i/2)%2], at: base.Add(time.Duration(i) * time.Millisecond)}
		evs = append(evs, ev)
		body := fmt.Sprintf(`{"id":%q,"event":%q,"timestamp":"2026-03-04T12:00:00+00:00","data":{"n":%d}}`, ev.id, ev.typ, i)
		recs = append(recs, &kgo.Record{Topic: e.names.Events, Key: []byte(fmt.Sprintf("key-%d", i%13)), Value: []byte(body),
			Timestamp: ev.at, Headers: []kgo.RecordHeader{{Key: record.HeaderTenant, Value: []byte(ev.tenant)}}})
	}
	cl := e.k.Client(t, kgo.ProducerBatchMaxBytes(1<<20))
	if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	return evs
}

// deliveries returns the committed delivery records with trigger.
func (e *env) deliveries(t *testing.T, trigger string) []record.Delivery {
	t.Helper()
	var out []record.Delivery
	for _, r := range e.k.ReadAll(t, e.names.Deliveries) {
		d, err := record.Parse(r)
		if err != nil {
			t.Fatal(err)
		}
		if d.Trigger == trigger {
			out = append(out, d)
		}
	}
	return out
}

func (e *env) waitState(t *testing.T, tenant, id string, timeout time.Duration, states ...string) recovery.Job {
	t.Helper()
	var j recovery.Job
	testenv.Eventually(t, timeout, "job "+id+" to reach "+strings.Join(states, "/"), func() bool {
		var err error
		j, err = e.svc.Get(tenant, id)
		return err == nil && slices.Contains(states, j.State)
	})
	return j
}

// TestReplayWindowAcrossPartitions replays a window of 10,000 events spread
// over 4 partitions: the endpoint gets exactly its tenant's matching events
// of the window, each once, in publish order; the other tenant's never.
func TestReplayWindowAcrossPartitions(t *testing.T) {
	e := newEnv(t)
	ep := e.endpoint(t, "acme", "agent.*")
	other := e.endpoint(t, "other", "*")
	base := time.Now().Add(-time.Hour).Truncate(time.Second)
	evs := e.publish(t, 12000, base)
	since, until := evs[1000].at, evs[11000].at // the window holds events 1000..10999
	var want []string
	for _, ev := range evs[1000:11000] {
		if ev.tenant == "acme" && strings.HasPrefix(ev.typ, "agent.") {
			want = append(want, ev.id)
		}
	}

	count, sample, err := e.svc.DryRun(context.Background(), recovery.Filter{Tenant: "acme", Since: since, Until: until,
		Endpoint: mustGet(t, e.store, "acme", ep)}, 5)
	if err != nil {
		t.Fatal(err)
	}
	if count != int64(len(want)) || len(sample) != 5 || sample[0].ID != want[0] {
		t.Fatalf("dry run: %d events, sample %d starting %v; want %d starting %s", count, len(sample), sample, len(want), want[0])
	}
	if got := e.deliveries(t, recovery.KindReplay); len(got) != 0 {
		t.Fatalf("a dry run wrote %d deliveries", len(got))
	}

	j, _, err := e.svc.Submit(context.Background(), recovery.Job{Tenant: "acme", Kind: recovery.KindReplay, EndpointID: ep,
		Since: since, Until: until, Rate: 20000}, nil)
	if err != nil {
		t.Fatal(err)
	}
	j = e.waitState(t, "acme", j.ID, time.Minute, recovery.StateDone, recovery.StateFailed)
	if j.State != recovery.StateDone || j.Sent != int64(len(want)) || j.Processed != j.Total || j.Total != 10000 {
		t.Fatalf("job = %+v, want done, sent %d, processed = total = 10000", j, len(want))
	}
	got := e.deliveries(t, recovery.KindReplay)
	var ids []string
	for _, d := range got {
		if d.EndpointID != ep || d.Tenant != "acme" {
			t.Fatalf("delivery to %s of tenant %s: only %s of acme may get replayed events (the other tenant's endpoint is %s)", d.EndpointID, d.Tenant, ep, other)
		}
		ids = append(ids, d.EventID)
	}
	if !slices.Equal(ids, want) {
		t.Fatalf("replayed %d events, want %d in publish order (first difference at %d)", len(ids), len(want), firstDiff(ids, want))
	}
}

func firstDiff(a, b []string) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

func mustGet(t *testing.T, s *subscription.Store, tenant, id string) *subscription.Endpoint {
	t.Helper()
	ep, err := s.Get(context.Background(), tenant, id)
	if err != nil {
		t.Fatal(err)
	}
	return ep
}

// TestCancelAndDeletedEndpoint: cancel ends a running job within a second
// and it writes nothing after; a job whose endpoint is deleted, or
// disabled, ends failed with the reason.
func TestCancelAndDeletedEndpoint(t *testing.T) {
	e := newEnv(t)
	ep := e.endpoint(t, "acme", "*")
	ep2 := e.endpoint(t, "acme", "*")
	ep3 := e.endpoint(t, "acme", "*")
	e.publish(t, 4000, time.Now().Add(-time.Hour))
	slow := func(id string) recovery.Job {
		j, _, err := e.svc.Submit(context.Background(), recovery.Job{Tenant: "acme", Kind: recovery.KindReplay, EndpointID: id,
			Since: time.Now().Add(-2 * time.Hour), Rate: 50}, nil)
		if err != nil {
			t.Fatal(err)
		}
		return j
	}
	a, b, c := slow(ep), slow(ep2), slow(ep3)
	e.waitState(t, "acme", a.ID, 30*time.Second, recovery.StateRunning)
	testenv.Eventually(t, 30*time.Second, "the job to send", func() bool { j, _ := e.svc.Get("acme", a.ID); return j.Sent > 0 })
	asked := time.Now()
	if _, err := e.svc.Cancel(context.Background(), "acme", a.ID); err != nil {
		t.Fatal(err)
	}
	j := e.waitState(t, "acme", a.ID, 5*time.Second, recovery.StateCanceled)
	if took := time.Since(asked); took > time.Second {
		t.Errorf("cancel took %s, want within 1s", took)
	}
	if _, err := e.svc.Cancel(context.Background(), "acme", a.ID); !errors.Is(err, recovery.ErrFinished) {
		t.Errorf("second cancel: %v, want ErrFinished", err)
	}
	time.Sleep(500 * time.Millisecond)
	n := 0
	for _, d := range e.deliveries(t, recovery.KindReplay) {
		if d.EndpointID == ep {
			n++
		}
	}
	if int64(n) != j.Sent {
		t.Errorf("%d deliveries committed for the canceled job, its state says %d", n, j.Sent)
	}

	if err := e.store.Delete(context.Background(), "acme", ep2); err != nil {
		t.Fatal(err)
	}
	j = e.waitState(t, "acme", b.ID, 10*time.Second, recovery.StateFailed, recovery.StateDone)
	if j.State != recovery.StateFailed || !strings.Contains(j.Error, "deleted") {
		t.Fatalf("job on a deleted endpoint: %+v, want failed with a reason", j)
	}
	disabled := true
	if _, err := e.store.Update(context.Background(), "acme", ep3, subscription.Patch{Disabled: &disabled}); err != nil {
		t.Fatal(err)
	}
	j = e.waitState(t, "acme", c.ID, 10*time.Second, recovery.StateFailed, recovery.StateDone)
	if j.State != recovery.StateFailed || !strings.Contains(j.Error, "disabled") || j.Sent >= 4000 {
		t.Fatalf("job on an endpoint disabled mid-job: %+v, want failed with a reason", j)
	}
}

// TestResendIdempotentAndResume: a resend sends the same bytes with
// trigger resend; the same idempotency key returns the same job; a new
// runner (the old one stopped mid-job) finishes the job without sending
// anything twice.
func TestResendIdempotentAndResume(t *testing.T) {
	e := newEnv(t)
	ep := e.endpoint(t, "acme", "*")
	var plan []recovery.Item
	var recs []*kgo.Record
	for i := range 300 {
		d := record.Delivery{EndpointID: "ep_orig", Tenant: "acme", EventID: fmt.Sprintf("evt_%024x", i), EventType: "agent.created",
			Body: fmt.Appendf(nil, `{"id":"evt_%024x","event":"agent.created","timestamp":"2026-03-04T12:00:00+00:00","data":{}}`, i)}
		recs = append(recs, d.Record(e.names.Deliveries))
	}
	if err := e.cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		plan = append(plan, recovery.Item{EndpointID: ep, Partition: r.Partition, Offset: r.Offset})
	}
	job := recovery.Job{Tenant: "acme", Kind: recovery.KindResend, IdempotencyKey: "k1", Rate: 100}
	j, existing, err := e.svc.Submit(context.Background(), job, plan)
	if err != nil || existing {
		t.Fatal(err, existing)
	}
	again, existing, err := e.svc.Submit(context.Background(), job, plan)
	if err != nil || !existing || again.ID != j.ID {
		t.Fatalf("repeated key: %s existing=%v err=%v, want %s", again.ID, existing, err, j.ID)
	}
	testenv.Eventually(t, 30*time.Second, "the job to send some", func() bool { j, _ := e.svc.Get("acme", j.ID); return j.Sent > 50 })
	if err := e.stopSv(); err != nil {
		t.Fatal(err)
	}
	e.start(t)
	j = e.waitState(t, "acme", j.ID, time.Minute, recovery.StateDone)
	got := e.deliveries(t, recovery.KindResend)
	if len(got) != 300 || j.Sent != 300 {
		t.Fatalf("%d resent (job says %d), want 300 once each", len(got), j.Sent)
	}
	for i, d := range got {
		if d.EndpointID != ep || string(d.Body) != string(recs[i].Value) {
			t.Fatalf("resend %d: to %s, body %s; want %s, the original bytes in order", i, d.EndpointID, d.Body, ep)
		}
	}
}

// TestReplayWaitsForTheDeliverer: a job stops writing while the deliveries
// partition holds more than MaxLead records beyond the deliverer group's
// committed offset, and goes on once the deliverer has caught up.
func TestReplayWaitsForTheDeliverer(t *testing.T) {
	e := newEnv(t, 200)
	ep := e.endpoint(t, "acme", "*")
	e.publish(t, 2000, time.Now().Add(-time.Hour))
	j, _, err := e.svc.Submit(context.Background(), recovery.Job{Tenant: "acme", Kind: recovery.KindReplay, EndpointID: ep,
		Since: time.Now().Add(-2 * time.Hour), Rate: 1000}, nil)
	if err != nil {
		t.Fatal(err)
	}
	// No deliverer runs: the job may get one step (100 records) past
	// the bound, no further.
	testenv.Eventually(t, 30*time.Second, "the job to send", func() bool { j, _ = e.svc.Get("acme", j.ID); return j.Sent > 0 })
	time.Sleep(1500 * time.Millisecond)
	j, _ = e.svc.Get("acme", j.ID)
	if j.State != recovery.StateRunning || j.Sent < 200 || j.Sent > 300 {
		t.Fatalf("job without a deliverer: %+v, want it running and waiting after 200 to 300 sent", j)
	}
	// The deliverer catches up: it commits the end of the partitions.
	adm := kadm.NewClient(e.cl)
	commit := func() {
		ends, err := adm.ListEndOffsets(context.Background(), e.names.Deliveries)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := adm.CommitOffsets(context.Background(), deliverer.Group, ends.Offsets()); err != nil {
			t.Fatal(err)
		}
	}
	testenv.Eventually(t, time.Minute, "the job to finish as the deliverer commits", func() bool {
		commit()
		j, _ = e.svc.Get("acme", j.ID)
		return j.State == recovery.StateDone
	})
	if j.Sent != 1000 {
		t.Fatalf("job %+v, want the tenant's 1000 events sent", j)
	}
}

// TestResendFromEventRecords: items that name an event's record in the
// events topic become deliveries as fanout makes them (the event's bytes,
// id, type and trace headers) in plan order; another tenant's event and a
// record that is not an event fail their item, and the job goes on.
func TestResendFromEventRecords(t *testing.T) {
	e := newEnv(t)
	ep := e.endpoint(t, "acme", "*")
	trace := kgo.RecordHeader{Key: record.HeaderTrace, Value: []byte("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")}
	type rec struct {
		tenant, body string
		want         bool
	}
	recs := []rec{
		{"acme", `{"id":"evt_1","event":"agent.created","timestamp":"2026-03-04T12:00:00+00:00","data":{"n":1}}`, true},
		{"other", `{"id":"evt_2","event":"agent.created","timestamp":"2026-03-04T12:00:00+00:00","data":{}}`, false},
		{"acme", `not an event`, false},
		{"acme", `{"id":"evt_4","event":"call.started","timestamp":"2026-03-04T12:00:01+00:00","data":{"n":4}}`, true},
	}
	var krs []*kgo.Record
	for i, r := range recs {
		kr := &kgo.Record{Topic: e.names.Events, Key: []byte("k"), Value: []byte(r.body),
			Headers: []kgo.RecordHeader{{Key: record.HeaderTenant, Value: []byte(r.tenant)}}}
		if i == 0 {
			kr.Headers = append(kr.Headers, trace)
		}
		krs = append(krs, kr)
	}
	if err := e.cl.ProduceSync(context.Background(), krs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	// Plan order, not topic order: the last event first.
	var plan []recovery.Item
	for _, i := range []int{3, 1, 2, 0} {
		plan = append(plan, recovery.Item{EndpointID: ep, Partition: krs[i].Partition, Offset: krs[i].Offset, Event: true})
	}
	j, _, err := e.svc.Submit(context.Background(), recovery.Job{Tenant: "acme", Kind: recovery.KindResend}, plan)
	if err != nil {
		t.Fatal(err)
	}
	j = e.waitState(t, "acme", j.ID, time.Minute, recovery.StateDone)
	got := e.deliveries(t, recovery.KindResend)
	if len(got) != 2 || j.Sent != 2 || j.Failed != 2 {
		t.Fatalf("%d resent, job sent %d failed %d; want 2, 2, 2", len(got), j.Sent, j.Failed)
	}
	for i, want := range []struct {
		idx      int
		id, typ  string
		traceHdr bool
	}{{3, "evt_4", "call.started", false}, {0, "evt_1", "agent.created", true}} {
		d := got[i]
		if d.EndpointID != ep || d.Tenant != "acme" || d.EventID != want.id || d.EventType != want.typ || string(d.Body) != recs[want.idx].body {
			t.Errorf("delivery %d = %+v, want %s (%s) to %s with the event's bytes", i, d, want.id, want.typ, ep)
		}
		if has := slices.ContainsFunc(d.Trace, func(h kgo.RecordHeader) bool { return string(h.Value) == string(trace.Value) }); has != want.traceHdr {
			t.Errorf("delivery %d trace %v, want the event's (%v)", i, d.Trace, want.traceHdr)
		}
	}
}
