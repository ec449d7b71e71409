package deliverylog

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/hookstream/hookstream/deliverer"
	"github.com/hookstream/hookstream/internal/testenv"
)

// TestStatsCounterLayouts: a minute's counters read the same whether the
// indexer wrote them as one field per attempt (class and bucket) or, as
// before 2026-12-05, an outcome field and a latency field per attempt, so
// an upgrade keeps the stats of the retention window.
func TestStatsCounterLayouts(t *testing.T) {
	const tenant, ep = "acme", "ep_a"
	ctx := context.Background()
	b40, b900 := latencyBucket(40), latencyBucket(900)
	cases := []struct {
		name   string
		fields map[string]any // the minute's hash
	}{
		{"class and bucket", map[string]any{
			// Failed and refused attempts share their class's field.
			counterField("delivered", b40): 3, counterField("refused", b900): 2,
			counterField("deleted", b40): 1, "dead": 1,
			// Fields of neither layout count nothing.
			"": 5, "d": 5, "d-1": 5, "x9": 5}},
		{"outcome and latency apart", map[string]any{
			"o:delivered": 3, "o:failed": 1, "o:refused": 1, "o:deleted": 1, "dead": 1,
			"l:" + strconv.Itoa(b40): 4, "l:" + strconv.Itoa(b900): 2}},
		{"both, across an upgrade", map[string]any{
			"o:delivered": 2, "o:failed": 1, "l:" + strconv.Itoa(b40): 2, "l:" + strconv.Itoa(b900): 1, "dead": 1,
			counterField("delivered", b40): 1, counterField("refused", b900): 1, counterField("deleted", b40): 1}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := testenv.StartRedis(t)
			ix := NewIndex(r.Client, time.Hour)
			if err := r.Client.HSet(ctx, statKey(tenant, ep, time.Now()), c.fields).Err(); err != nil {
				t.Fatal(err)
			}
			st, err := ix.EndpointStats(ctx, tenant, ep, time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			if st.Delivered != 3 || st.Failed != 2 || st.Dead != 1 || st.SuccessRate != 0.6 {
				t.Errorf("%+v; want 3 delivered, 2 failed, 1 dead, success 0.6", st)
			}
			// Six attempts with a latency: four at 40 ms, two at 900 ms.
			if st.P50MS != bucketMS(b40) || st.P99MS != bucketMS(b900) {
				t.Errorf("p50 %d, p99 %d ms; want %d and %d", st.P50MS, st.P99MS, bucketMS(b40), bucketMS(b900))
			}
		})
	}
}

// TestEventTypeOncePerRun: attempts give their event its type when no
// match record was indexed, once per indexer run: a later poll of the same
// run does not write it again, a new run (as after a flush) does.
func TestEventTypeOncePerRun(t *testing.T) {
	ctx := context.Background()
	r := testenv.StartRedis(t)
	ix := NewIndex(r.Client, time.Hour)
	at := time.Now().Add(-time.Minute).Truncate(time.Millisecond)
	attempt := func(ep string, off int64) []Located {
		return []Located{{Partition: 0, Offset: off, Attempt: deliverer.Attempt{Tenant: "acme", EndpointID: ep,
			EventID: "evt_1", EventType: "agent.created", Attempt: 1, Status: 200, Outcome: "delivered",
			Trigger: "scheduled", At: at}}}
	}
	typeOf := func() string { return r.Client.HGet(ctx, eventDeliveriesKey("acme", "evt_1"), "type").Val() }
	run := newHousekeeping()
	if err := ix.addAll(ctx, run, attempt("ep_a", 1)); err != nil {
		t.Fatal(err)
	}
	if got := typeOf(); got != "agent.created" {
		t.Fatalf("type after the first attempt %q, want agent.created", got)
	}
	r.Client.HDel(ctx, eventDeliveriesKey("acme", "evt_1"), "type")
	if err := ix.addAll(ctx, run, attempt("ep_b", 2)); err != nil {
		t.Fatal(err)
	}
	if got := typeOf(); got != "" {
		t.Errorf("type written again in the same run: %q", got)
	}
	if err := ix.addAll(ctx, newHousekeeping(), attempt("ep_c", 3)); err != nil {
		t.Fatal(err)
	}
	if got := typeOf(); got != "agent.created" {
		t.Errorf("type after a new run's attempt %q, want agent.created", got)
	}
}
