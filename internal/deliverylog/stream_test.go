package deliverylog_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/hookstream/hookstream/deliverer"
	"github.com/hookstream/hookstream/internal/deliverylog"
	"github.com/hookstream/hookstream/internal/testenv"
)

// TestEndpointStream: an endpoint's attempts are entries of one stream (one
// key and one TTL, not one per attempt); an attempt past retention is gone
// from reads even while its stream lives on, and the stream drops old
// entries as new ones come.
func TestEndpointStream(t *testing.T) {
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
	keys, err := r.Client.Keys(ctx, "dl:v2:{acme}:eps:*").Result()
	if err != nil || len(keys) != 1 {
		t.Fatalf("stream keys %v, %v; want one for one endpoint", keys, err)
	}
	stream := keys[0]
	if n := r.Client.XLen(ctx, stream).Val(); n != 100 {
		t.Errorf("stream holds %d attempts, want 100", n)
	}
	// Expiries are rounded up to five minutes.
	if ttl := r.Client.PTTL(ctx, stream).Val(); ttl <= 0 || ttl > retention+5*time.Minute {
		t.Errorf("stream TTL %v, want within (0, retention + 5m]", ttl)
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
	if n := r.Client.Exists(ctx, stream).Val(); n != 1 {
		t.Errorf("stream gone early (test premise)")
	}
	// The next write trims the stream's nodes that are past retention: a
	// node holds at most 4 KiB at Redis's default, so 100 entries fill
	// more than one, and only the node the new entry joins stays.
	a := deliverer.Attempt{Tenant: "acme", EndpointID: "ep_a", EventID: "evt_2", EventType: "t", Attempt: 1,
		Status: 200, Outcome: "delivered", Trigger: "scheduled", At: time.Now()}
	if err := ix.Add(ctx, 0, 100, a); err != nil {
		t.Fatal(err)
	}
	if n := r.Client.XLen(ctx, stream).Val(); n < 1 || n > 50 {
		t.Errorf("stream holds %d entries after the window moved on, want its last node's", n)
	}
	if pg, err := ix.EndpointAttempts(ctx, "acme", "ep_a", deliverylog.Query{}); err != nil || len(pg.Data) != 1 || pg.Data[0].EventID != "evt_2" {
		t.Errorf("page after the window moved on: %+v, %v; want the new attempt alone", pg.Data, err)
	}
}

// TestStreamWithoutState: an endpoint's state key gone before its stream
// (it expired first, or was deleted) does not stop the next attempt, even
// one stamped before the stream's last entry.
func TestStreamWithoutState(t *testing.T) {
	r := testenv.StartRedis(t)
	ctx := context.Background()
	ix := deliverylog.NewIndex(r.Client, 0)
	at := time.Now()
	add := func(offset int64, at time.Time) {
		t.Helper()
		a := deliverer.Attempt{Tenant: "acme", EndpointID: "ep_a", EventID: fmt.Sprintf("evt_%d", offset), EventType: "t", Attempt: 1,
			Status: 200, Outcome: "delivered", Trigger: "scheduled", At: at}
		if err := ix.Add(ctx, 0, offset, a); err != nil {
			t.Fatal(err)
		}
	}
	add(1, at)
	states, err := r.Client.Keys(ctx, "dl:v2:{acme}:es:*").Result()
	if err != nil || len(states) != 1 {
		t.Fatalf("state keys %v, %v", states, err)
	}
	if err := r.Client.Del(ctx, states[0]).Err(); err != nil {
		t.Fatal(err)
	}
	add(2, at.Add(-time.Second))
	pg, err := ix.EndpointAttempts(ctx, "acme", "ep_a", deliverylog.Query{})
	if err != nil || len(pg.Data) != 2 || pg.Data[0].EventID != "evt_2" || !pg.Data[0].At.Equal(at.Add(-time.Second).Truncate(time.Millisecond)) {
		t.Fatalf("page %+v, %v; want both attempts, the later-written first with its own time", pg.Data, err)
	}
}

// TestDeliveryKeepsItsLatestAttempt: a delivery's attempts written out of
// order (a deliverer that lost its partition finishing late) leave the
// latest one as the delivery's state, and every attempt in its list.
func TestDeliveryKeepsItsLatestAttempt(t *testing.T) {
	r := testenv.StartRedis(t)
	ctx := context.Background()
	ix := deliverylog.NewIndex(r.Client, 0)
	t0 := time.Now().Add(-time.Minute).Truncate(time.Millisecond)
	attempt := func(n int, outcome string, status int, at time.Time) deliverer.Attempt {
		return deliverer.Attempt{Tenant: "acme", EndpointID: "ep_a", EventID: "evt_1", EventType: "t", Attempt: n,
			Status: status, Outcome: outcome, Trigger: "scheduled", At: at}
	}
	// The second attempt's record comes first in the topic.
	if err := ix.AddAll(ctx, []deliverylog.Located{
		{Partition: 0, Offset: 1, Attempt: attempt(2, "delivered", 200, t0.Add(2*time.Second))},
		{Partition: 0, Offset: 2, Attempt: attempt(1, "failed", 500, t0.Add(time.Second))},
	}); err != nil {
		t.Fatal(err)
	}
	ev, err := ix.Event(ctx, "acme", "evt_1")
	if err != nil {
		t.Fatal(err)
	}
	d, ok := ev.Delivery("ep_a")
	if !ok || d.Status != deliverylog.StatusDelivered || d.Attempts != 2 || d.LastStatusCode != 200 || !d.LastAttemptAt.Equal(t0.Add(2*time.Second)) {
		t.Errorf("delivery %+v, want delivered by attempt 2 at %v", d, t0.Add(2*time.Second))
	}
	pg, err := ix.EventAttempts(ctx, "acme", "evt_1", deliverylog.Query{})
	if err != nil || len(pg.Data) != 2 {
		t.Fatalf("event attempts %+v, %v; want both", pg.Data, err)
	}
}
