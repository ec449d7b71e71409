package recovery_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hookstream/hookstream/internal/record"
	"github.com/hookstream/hookstream/internal/recovery"
)

// TestPlansReadBack: a job's plan names event records by partition and
// offset, and every one is sent, however they lie:
//   - a resend names one record once per endpoint, one after the other,
//     with more records after it in its partition or none;
//   - a recover's events may sit in several partitions (producers keyed
//     finer than the tenant).
func TestPlansReadBack(t *testing.T) {
	tests := []struct {
		name      string
		kind      string
		keys      []string // one event record per key
		endpoints int      // plan items per record, each to its own endpoint
		after     bool     // another record follows in the partition
	}{
		{name: "resend to two endpoints, records after", kind: recovery.KindResend, keys: []string{"k"}, endpoints: 2, after: true},
		{name: "resend to three endpoints, the partition's last record", kind: recovery.KindResend, keys: []string{"k"}, endpoints: 3},
		{name: "recover across partitions", kind: recovery.KindRecover, keys: []string{"order-0", "order-1", "order-2", "order-3", "order-4", "order-5"}, endpoints: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			ctx := context.Background()
			eps := make([]string, tt.endpoints)
			for i := range eps {
				eps[i] = e.endpoint(t, "acme", "*")
			}
			mk := func(key string, n int) *kgo.Record {
				return &kgo.Record{Topic: e.names.Events, Key: []byte(key),
					Value:   fmt.Appendf(nil, `{"id":"evt_%024x","event":"agent.created","timestamp":"2026-03-04T12:00:00+00:00","data":{}}`, n),
					Headers: []kgo.RecordHeader{{Key: record.HeaderTenant, Value: []byte("acme")}}}
			}
			var recs []*kgo.Record
			for i, k := range tt.keys {
				recs = append(recs, mk(k, i+1))
			}
			if err := e.cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
				t.Fatal(err)
			}
			parts := map[int32]bool{}
			var plan []recovery.Item
			for _, r := range recs {
				parts[r.Partition] = true
				for _, ep := range eps {
					plan = append(plan, recovery.Item{EndpointID: ep, Partition: r.Partition, Offset: r.Offset, Event: true})
				}
			}
			if len(tt.keys) > 1 && len(parts) < 2 {
				t.Fatalf("the records all went to one partition: the test needs keys that spread")
			}
			if tt.after {
				if err := e.cl.ProduceSync(ctx, mk(tt.keys[0], 99)).FirstErr(); err != nil {
					t.Fatal(err)
				}
			}
			j := recovery.Job{Tenant: "acme", Kind: tt.kind}
			if tt.kind == recovery.KindRecover {
				j.EndpointID, j.Since = eps[0], time.Now().Add(-time.Hour)
			}
			j, _, err := e.svc.Submit(ctx, j, plan)
			if err != nil {
				t.Fatal(err)
			}
			j = e.waitState(t, "acme", j.ID, 30*time.Second, recovery.StateDone, recovery.StateFailed)
			got := map[string]bool{}
			for _, d := range e.deliveries(t, tt.kind) {
				got[d.EndpointID+"/"+d.EventID] = true
			}
			if j.State != recovery.StateDone || j.Sent != int64(len(plan)) || j.Failed != 0 || len(got) != len(plan) {
				t.Fatalf("job %s sent %d failed %d, %d distinct deliveries; want done, %d sent, none failed", j.State, j.Sent, j.Failed, len(got), len(plan))
			}
		})
	}
}
