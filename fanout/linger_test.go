package fanout_test

import (
	"testing"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/hookstream/hookstream/fanout"
	"github.com/hookstream/hookstream/internal/testenv"
)

// TestLinger: events published one by one, 30 ms apart, each its own poll,
// share transactions when polls linger: with a 2 s linger ten of them take
// at most three transactions; without it, one each (the run without is
// what shows the counting works). Every event is fanned out either way.
func TestLinger(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		linger   time.Duration
		min, max int64
	}{
		{"off", 0, 4, 10},
		{"2s", 2 * time.Second, 1, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := newRig(t, 1)
			ctx := ctxFor(t, 60*time.Second)
			ep := r.endpoint(t, "acme", "agent.created")
			reader := sdkmetric.NewManualReader()
			r.start(t, nil, fanout.WithLinger(tt.linger), fanout.WithMeterProvider(sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))))
			r.publish(t, ctx, "acme", "agent.created") // the first batch: the group is up
			r.waitProcessed(t)
			// The first batch's commit is counted just after its records
			// are visible: wait for it, or it counts among the ten.
			testenv.Eventually(t, 10*time.Second, "the first transaction counted", func() bool { return transactions(t, reader) >= 1 })
			before := transactions(t, reader)
			want := map[string]int{}
			for range 10 {
				time.Sleep(30 * time.Millisecond)
				want[pair(r.publish(t, ctx, "acme", "agent.created"), ep)] = 1
			}
			r.waitProcessed(t)
			if n := transactions(t, reader) - before; n < tt.min || n > tt.max {
				t.Errorf("10 events 30 ms apart took %d transactions, want %d..%d", n, tt.min, tt.max)
			}
			got := pairs(r.deliveries(t))
			for p := range want {
				if got[p] != 1 {
					t.Errorf("%s: %d deliveries, want 1", p, got[p])
				}
			}
		})
	}
}

// transactions is the count of committed fanout transactions so far.
func transactions(t *testing.T, reader *sdkmetric.ManualReader) int64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(ctxFor(t, 5*time.Second), &rm); err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != "hookstream.fanout.transactions" {
				continue
			}
			for _, dp := range m.Data.(metricdata.Sum[int64]).DataPoints {
				if v, _ := dp.Attributes.Value("result"); v.AsString() == "committed" {
					n += dp.Value
				}
			}
		}
	}
	return n
}
