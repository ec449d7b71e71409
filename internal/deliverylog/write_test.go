package deliverylog

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hookstream/hookstream/deliverer"
	"github.com/hookstream/hookstream/internal/testenv"
)

// TestStaleStates: an indexer works out its writes from its copy of each
// endpoint's state, and the script refuses them when Redis holds another:
// a second indexer (as during a rollout) indexed the same records, the
// state key went, or the stream's entries went while its last id stayed.
// Each attempt is indexed once all the same, with its own entry, counted
// once, and no XADD fails on an id behind the stream's.
func TestStaleStates(t *testing.T) {
	const tenant, ep = "acme", "ep_a"
	ctx := context.Background()
	at := time.Now().Add(-time.Minute).Truncate(time.Millisecond)
	attempts := func(from, to int) []Located {
		var as []Located
		for i := from; i < to; i++ {
			as = append(as, Located{Partition: 3, Offset: int64(i), Attempt: deliverer.Attempt{Tenant: tenant, EndpointID: ep,
				EventID: fmt.Sprintf("evt_%03d", i), EventType: "t", Attempt: 1, Status: 200, Outcome: "delivered",
				Trigger: "scheduled", At: at.Add(time.Duration(i) * time.Millisecond)}})
		}
		return as
	}
	cases := []struct {
		name string
		// meddle runs between the first indexer's two batches, with a
		// second indexer of its own.
		meddle func(t *testing.T, rdb *redis.Client, other func([]Located))
		want   int  // entries in the stream at the end
		fresh  bool // the second batch comes from a new run, knowing no state
	}{
		{"another indexer indexed them first", func(t *testing.T, _ *redis.Client, other func([]Located)) {
			other(attempts(0, 20))
		}, 20, false},
		{"another indexer indexed some of them", func(t *testing.T, _ *redis.Client, other func([]Located)) {
			other(attempts(0, 15))
		}, 20, false},
		{"state key gone", func(t *testing.T, rdb *redis.Client, _ func([]Located)) {
			rdb.Del(ctx, stateKey(tenant, ep))
		}, 20, false},
		{"entries gone, last id kept", func(t *testing.T, rdb *redis.Client, _ func([]Located)) {
			// Every entry deleted and the state with them: the next ids
			// must still pass the stream's last one.
			ids := rdb.XRange(ctx, endpointKey(tenant, ep), "-", "+").Val()
			for _, x := range ids {
				rdb.XDel(ctx, endpointKey(tenant, ep), x.ID)
			}
			rdb.Del(ctx, stateKey(tenant, ep))
		}, 10, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := testenv.StartRedis(t)
			ix := NewIndex(r.Client, 0)
			index := func(done *housekeeping, as []Located) {
				t.Helper()
				if err := ix.addAll(ctx, done, as); err != nil {
					t.Fatal(err)
				}
			}
			mine, theirs := newHousekeeping(), newHousekeeping()
			index(mine, attempts(0, 10))
			c.meddle(t, r.Client, func(as []Located) { index(theirs, as) })
			// Older in time than the first batch's entries too, so that
			// its ids come from the stream's last id, not its clock.
			later := attempts(10, 20)
			for i := range later {
				later[i].At = at.Add(-time.Second)
			}
			if c.fresh {
				mine = newHousekeeping()
			}
			index(mine, later)

			xs := r.Client.XRange(ctx, endpointKey(tenant, ep), "-", "+").Val()
			if len(xs) != c.want {
				t.Errorf("stream holds %d entries, want %d", len(xs), c.want)
			}
			events := map[string]int{}
			for _, x := range xs {
				var a deliverer.Attempt
				if _, _, err := decodeSummary(tenant, ep, x, &a); err != nil {
					t.Fatal(err)
				}
				events[a.EventID]++
			}
			for ev, n := range events {
				if n != 1 {
					t.Errorf("%s indexed %d times", ev, n)
				}
			}
			st, err := ix.EndpointStats(ctx, tenant, ep, time.Hour)
			if err != nil || st.Delivered != 20 {
				t.Errorf("stats: %d delivered, err %v; want each of 20 attempts counted once", st.Delivered, err)
			}
			// A later attempt of a delivery indexed earlier finds the
			// delivery's field and its ref.
			if e, err := ix.Event(ctx, tenant, "evt_015"); err != nil || len(e.Deliveries) != 1 || e.Deliveries[0].Attempts != 1 {
				t.Errorf("event evt_015: %+v, %v; want its one delivery with one attempt", e, err)
			}
		})
	}
}
