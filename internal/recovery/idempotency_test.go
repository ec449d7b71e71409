package recovery_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/segmentio/encoding/json"

	"github.com/hookstream/hookstream/internal/recovery"
)

// TestIdempotencyKey: within the key's TTL the same key and parameters
// return the first job, other parameters or another target are refused
// naming what differs, and keys are per tenant; after the TTL the key
// starts a new job, which it names from then on.
func TestIdempotencyKey(t *testing.T) {
	const ttl = 3 * time.Second
	e := newEnv(t)
	if err := e.stopSv(); err != nil {
		t.Fatal(err)
	}
	e.tweak = func(c *recovery.Config) { c.KeyTTL = ttl }
	e.start(t)
	ep, ep2 := e.endpoint(t, "acme", "*"), e.endpoint(t, "acme", "*")
	otherEp := e.endpoint(t, "other", "*")
	since := time.Now().Add(-time.Hour).UTC()
	req := func(tenant, ep, sinceField string) recovery.Job {
		return recovery.Job{Tenant: tenant, Kind: recovery.KindReplay, EndpointID: ep, Since: since, IdempotencyKey: "k",
			Request: map[string]json.RawMessage{"since": json.RawMessage(`"` + sinceField + `"`), "rate": json.RawMessage(`0`)}}
	}
	submit := func(j recovery.Job) (recovery.Job, bool, error) {
		return e.svc.Submit(context.Background(), j, nil)
	}
	first, existing, err := submit(req("acme", ep, "a"))
	if err != nil || existing {
		t.Fatal(err, existing)
	}
	for _, c := range []struct {
		name  string
		job   recovery.Job
		field string // "" with want == nil: accepted as the first job
		want  error
	}{
		{"same key and parameters", req("acme", ep, "a"), "", nil},
		{"another since", req("acme", ep, "b"), "/since", recovery.ErrKeyReused},
		{"another endpoint", req("acme", ep2, "a"), "", recovery.ErrKeyReused},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, existing, err := submit(c.job)
			var reused *recovery.KeyReusedError
			switch {
			case c.want == nil && (err != nil || !existing || got.ID != first.ID):
				t.Fatalf("got %s existing=%v err=%v, want the first job %s", got.ID, existing, err, first.ID)
			case c.want != nil && (!errors.Is(err, c.want) || !errors.As(err, &reused) || reused.Field != c.field):
				t.Fatalf("err = %v, want %v naming %q", err, c.want, c.field)
			}
		})
	}
	other, existing, err := submit(req("other", otherEp, "b"))
	if err != nil || existing || other.ID == first.ID {
		t.Fatalf("another tenant's key: %s existing=%v err=%v, want a job of its own", other.ID, existing, err)
	}

	time.Sleep(time.Until(first.CreatedAt.Add(ttl)))
	second, existing, err := submit(req("acme", ep, "b"))
	if err != nil || existing || second.ID == first.ID {
		t.Fatalf("key after its TTL: %s existing=%v err=%v, want a new job", second.ID, existing, err)
	}
	again, existing, err := submit(req("acme", ep, "b"))
	if err != nil || !existing || again.ID != second.ID {
		t.Fatalf("key repeated after its new job: %s existing=%v err=%v, want %s", again.ID, existing, err, second.ID)
	}
	if _, err := e.svc.Get("acme", first.ID); err != nil {
		t.Fatalf("the first job is gone: %v", err)
	}
}
