package deliverylog_test

import (
	"context"
	"testing"
	"time"

	"github.com/hookstream/hookstream/deliverer"
	"github.com/hookstream/hookstream/internal/deliverylog"
	"github.com/hookstream/hookstream/internal/testenv"
)

// TestBatchedAttempts: attempts written a poll at a time count once each,
// however often a batch repeats them (a record at or below an offset
// already indexed is a replay), and an endpoint's state follows its
// attempts in time order within and across batches.
func TestBatchedAttempts(t *testing.T) {
	r := testenv.StartRedis(t)
	ctx := context.Background()
	t0 := time.Now().Add(-time.Minute).Truncate(time.Minute)
	at := func(i int, outcome string) deliverylog.Located {
		status := 500
		if outcome == "delivered" {
			status = 200
		}
		return deliverylog.Located{Partition: 0, Offset: int64(i), Attempt: deliverer.Attempt{Tenant: "acme", EndpointID: "ep_a",
			EventID: "evt_" + string(rune('a'+i)), EventType: "t", Attempt: 1, Status: status, Outcome: outcome,
			Trigger: "scheduled", LatencyMS: 10, At: t0.Add(time.Duration(i) * time.Second)}}
	}
	tests := []struct {
		name             string
		batches          [][]deliverylog.Located
		delivered, fails int64
		failingSince     time.Time // zero: not failing
	}{
		{"one batch, repeated", [][]deliverylog.Located{{at(0, "failed"), at(0, "failed"), at(1, "failed")}}, 0, 2, t0},
		{"recovered in the batch", [][]deliverylog.Located{{at(0, "failed"), at(1, "delivered")}}, 1, 1, time.Time{}},
		{"failing again after success", [][]deliverylog.Located{{at(0, "failed"), at(1, "delivered"), at(2, "failed"), at(3, "failed")}}, 1, 3, t0.Add(2 * time.Second)},
		{"out of time order across batches", [][]deliverylog.Located{{at(2, "failed")}, {off(at(1, "delivered"), 3), off(at(0, "failed"), 4)}}, 1, 2, t0.Add(2 * time.Second)},
		{"replayed batch", [][]deliverylog.Located{{at(0, "failed"), at(1, "failed")}, {at(0, "failed"), at(1, "failed")}}, 0, 2, t0},
		{"more than one script's worth", [][]deliverylog.Located{many(at, 1200)}, 0, 1200, t0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := r.Client.FlushAll(ctx).Err(); err != nil {
				t.Fatal(err)
			}
			ix := deliverylog.NewIndex(r.Client, 0)
			for _, b := range tt.batches {
				if err := ix.AddAll(ctx, b); err != nil {
					t.Fatal(err)
				}
			}
			st, err := ix.EndpointStats(ctx, "acme", "ep_a", time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			if st.Delivered != tt.delivered || st.Failed != tt.fails || !st.FailingSince.Equal(tt.failingSince) {
				t.Errorf("delivered %d, failed %d, failing since %v; want %d, %d, %v",
					st.Delivered, st.Failed, st.FailingSince, tt.delivered, tt.fails, tt.failingSince)
			}
			pg, err := ix.EndpointAttempts(ctx, "acme", "ep_a", deliverylog.Query{Limit: 250})
			if err != nil {
				t.Fatal(err)
			}
			if want := min(tt.delivered+tt.fails, 250); int64(len(pg.Data)) != want {
				t.Errorf("listed %d attempts, want %d", len(pg.Data), want)
			}
			// Each attempt keeps its own time, even one written after a
			// later one (its entry id moved past it).
			at := map[string]time.Time{}
			for _, b := range tt.batches {
				for _, l := range b {
					at[l.EventID] = l.At.Truncate(time.Millisecond)
				}
			}
			for _, e := range pg.Data {
				if want, ok := at[e.EventID]; ok && e.EventID != "evt_many" && !e.At.Equal(want) {
					t.Errorf("%s listed at %v, want %v", e.EventID, e.At, want)
				}
			}
		})
	}
}

// off places l at offset o of its partition: a record written later.
func off(l deliverylog.Located, o int64) deliverylog.Located {
	l.Offset = o
	return l
}

func many(at func(int, string) deliverylog.Located, n int) []deliverylog.Located {
	out := make([]deliverylog.Located, n)
	for i := range out {
		out[i] = at(i, "failed")
		out[i].At = out[0].At // one minute's counters
		out[i].EventID = "evt_many"
	}
	return out
}
