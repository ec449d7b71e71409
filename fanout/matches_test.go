package fanout_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hookstream/hookstream/internal/record"
	"github.com/hookstream/hookstream/producer"
	"github.com/hookstream/hookstream/subscription"
)

// TestMatchRecords checks the delivery log's record of each accepted
// event: one per event, also for one that matched nothing; it names the
// endpoints that got a delivery record (exactly those), the disabled ones
// that did not, and the event's own place in the events topic. Duplicates
// and poison records get none.
func TestMatchRecords(t *testing.T) {
	t.Parallel()
	r := newRig(t, 2)
	ctx := ctxFor(t, 60*time.Second)
	agents := r.endpoint(t, "acme", "agent.*")
	off := r.endpoint(t, "acme", "*")
	yes := true
	if _, err := r.api.Update(ctx, "acme", off, subscription.Patch{Disabled: &yes}); err != nil {
		t.Fatal(err)
	}
	created := r.publish(t, ctx, "acme", "agent.created", producer.WithID("evt_created"))
	call := r.publish(t, ctx, "acme", "call.started")
	nobody := r.publish(t, ctx, "globex", "agent.created")
	r.publish(t, ctx, "acme", "agent.deployed", producer.WithID("evt_created")) // duplicate id
	r.produceRaw(t, &kgo.Record{Value: []byte("not json"), Headers: []kgo.RecordHeader{{Key: record.HeaderTenant, Value: []byte("acme")}}})
	r.start(t, nil)
	r.waitProcessed(t)

	events := map[string]*kgo.Record{}
	for _, rec := range r.kafka.ReadAll(t, r.names.Events) {
		events[fmt.Sprintf("%s/%d/%d", rec.Topic, rec.Partition, rec.Offset)] = rec
	}
	delivered := map[string][]string{}
	for _, d := range r.deliveries(t) {
		delivered[d.EventID] = append(delivered[d.EventID], d.EndpointID)
	}
	want := map[string]struct{ endpoints, disabled []string }{
		created: {[]string{agents}, []string{off}},
		call:    {nil, []string{off}},
		nobody:  {nil, nil},
	}
	got := map[string]record.Match{}
	for _, rec := range r.kafka.ReadAll(t, r.names.Matches) {
		m, err := record.ParseMatch(rec)
		if err != nil {
			t.Fatal(err)
		}
		if _, dup := got[m.EventID]; dup {
			t.Errorf("two match records of %s", m.EventID)
		}
		got[m.EventID] = m
		src := events[fmt.Sprintf("%s/%d/%d", m.Topic, m.Partition, m.Offset)]
		if src == nil || string(record.Header(src, record.HeaderTenant)) != m.Tenant || m.At.IsZero() {
			t.Errorf("match %+v does not point at its event in %s", m, r.names.Events)
		}
	}
	if len(got) != len(want) {
		t.Errorf("%d match records, want %d (one per accepted event): %+v", len(got), len(want), got)
	}
	for id, w := range want {
		m := got[id]
		if !slices.Equal(m.Endpoints, w.endpoints) && len(m.Endpoints)+len(w.endpoints) > 0 {
			t.Errorf("%s matched %v, want %v", id, m.Endpoints, w.endpoints)
		}
		if !slices.Equal(m.Disabled, w.disabled) {
			t.Errorf("%s disabled %v, want %v", id, m.Disabled, w.disabled)
		}
		if d := delivered[id]; !slices.Equal(d, m.Endpoints) && len(d)+len(m.Endpoints) > 0 {
			t.Errorf("%s: match record names %v, delivery records went to %v", id, m.Endpoints, d)
		}
	}
}
