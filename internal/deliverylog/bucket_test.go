package deliverylog_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/hookstream/hookstream/deliverer"
	"github.com/hookstream/hookstream/internal/deliverylog"
	"github.com/hookstream/hookstream/internal/testenv"
)

// TestBucketedEntries: attempts share one hash per time bucket (one key and
// one TTL, not one per attempt), and an attempt past retention is gone from
// reads even while its bucket lives on.
func TestBucketedEntries(t *testing.T) {
	r := testenv.StartRedis(t)
	ctx := context.Background()
	const retention = 2 * time.Second
	ix := deliverylog.NewIndex(r.Client, retention)
	at := time.Now()
	for i := range 100 {
		a := deliverer.Attempt{Tenant: "acme", EndpointID: "ep_a", EventID: "evt_1", EventType: "t", Attempt: i + 1,
			Status: 500, Outcome: "failed", Trigger: "scheduled", At: at}
		if err := ix.Add(ctx, 0, int64(i), a); err != nil {
			t.Fatal(err)
		}
	}
	buckets, err := r.Client.Keys(ctx, "dl:{acme}:b:*").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(buckets) != 1 {
		t.Fatalf("bucket keys %v, want one for 100 attempts of one instant", buckets)
	}
	if n := r.Client.HLen(ctx, buckets[0]).Val(); n != 100 {
		t.Errorf("bucket holds %d attempts, want 100", n)
	}
	// Expiries are rounded up to five minutes.
	if ttl := r.Client.PTTL(ctx, buckets[0]).Val(); ttl <= 0 || ttl > time.Hour+retention+5*time.Minute {
		t.Errorf("bucket TTL %v, want within (0, bucket span + retention + 5m]", ttl)
	}
	pg, err := ix.EndpointAttempts(ctx, "acme", "ep_a", deliverylog.Query{})
	if err != nil || len(pg.Data) != 50 || pg.Data[0].Attempt.Attempt != 100 {
		t.Fatalf("first page: %d entries, err %v; want 50, newest first", len(pg.Data), err)
	}
	id := pg.Data[0].ID
	if e, err := ix.Attempt(ctx, "acme", id); err != nil || e.ID != id || e.Attempt.Attempt != 100 || e.Tenant != "acme" {
		t.Fatalf("Attempt(%s) = %+v, %v", id, e, err)
	}
	// Past retention: not found, though the bucket hash still exists.
	time.Sleep(time.Until(at.Add(retention + 100*time.Millisecond)))
	if _, err := ix.Attempt(ctx, "acme", id); !errors.Is(err, deliverylog.ErrNotFound) {
		t.Errorf("attempt past retention: %v, want ErrNotFound", err)
	}
	if pg, err := ix.EndpointAttempts(ctx, "acme", "ep_a", deliverylog.Query{}); err != nil || len(pg.Data) != 0 {
		t.Errorf("page past retention: %d entries, err %v; want none", len(pg.Data), err)
	}
	if n := r.Client.Exists(ctx, buckets[0]).Val(); n != 1 {
		t.Errorf("bucket gone early (test premise)")
	}
}
