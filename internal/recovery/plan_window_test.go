package recovery_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/hookstream/hookstream/deliverer"
	"github.com/hookstream/hookstream/internal/deliverylog"
	"github.com/hookstream/hookstream/internal/recovery"
	"github.com/hookstream/hookstream/internal/testenv"
)

// TestPlanRecoverRefusesTooLargeWindow: a recover window in which more
// events were attempted to the endpoint than the limit is refused, naming
// where the newest limit of them start; from there it is accepted. Other
// endpoints' and tenants' attempts do not count.
func TestPlanRecoverRefusesTooLargeWindow(t *testing.T) {
	r := testenv.StartRedis(t)
	ctx := context.Background()
	ix := deliverylog.NewIndex(r.Client, 0)
	t0 := time.Now().Add(-time.Hour).Truncate(time.Second)
	// Six events one second apart, two attempts each, 100ms apart; as
	// many to another endpoint and another tenant.
	off := int64(0)
	for i := range 6 {
		for _, who := range []struct{ tenant, ep string }{{"acme", "ep_a"}, {"acme", "ep_b"}, {"other", "ep_a"}} {
			for n := range 2 {
				a := deliverer.Attempt{Tenant: who.tenant, EndpointID: who.ep, EventID: fmt.Sprintf("evt_%s_%d", who.ep, i), EventType: "agent.created",
					Attempt: n + 1, Status: 500, Outcome: "failed", Trigger: "scheduled", At: t0.Add(time.Duration(i)*time.Second + time.Duration(n)*100*time.Millisecond)}
				if err := ix.Add(ctx, 0, off, a); err != nil {
					t.Fatal(err)
				}
				off++
			}
		}
	}
	for _, c := range []struct {
		name      string
		since     time.Time
		limit     int
		wantSince time.Time // zero: accepted
	}{
		{"six events, limit 6", t0, 6, time.Time{}},
		{"six events, no limit given", t0, 0, time.Time{}},
		{"six events, limit 4", t0, 4, t0.Add(2 * time.Second)}, // the newest four start at event 2
		{"from where it said", t0.Add(2 * time.Second), 4, time.Time{}},
		{"one second earlier", t0.Add(time.Second), 4, t0.Add(2 * time.Second)},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := recovery.PlanRecover(ctx, ix, "acme", "ep_a", c.since, time.Time{}, c.limit)
			var tooLarge *recovery.WindowTooLargeError
			switch {
			case c.wantSince.IsZero() && err != nil:
				t.Fatalf("refused: %v", err)
			case !c.wantSince.IsZero() && (!errors.Is(err, recovery.ErrWindowTooLarge) || !errors.As(err, &tooLarge)):
				t.Fatalf("err = %v, want ErrWindowTooLarge", err)
			case !c.wantSince.IsZero() && (!tooLarge.Since.Equal(c.wantSince) || tooLarge.Limit != c.limit):
				t.Fatalf("refused naming since %s, limit %d; want %s, %d", tooLarge.Since, tooLarge.Limit, c.wantSince, c.limit)
			}
		})
	}
}
