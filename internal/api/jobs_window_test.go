package api_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hookstream/hookstream/deliverer"
	"github.com/hookstream/hookstream/internal/api"
)

// TestRecoverWindowTooLarge: a recover whose window holds more events
// attempted to the endpoint than one recover goes through answers 422
// naming /since and where the newest of them start, instead of a job cut
// short; from there it is accepted.
func TestRecoverWindowTooLarge(t *testing.T) {
	base, ep, ix := jobsStackWith(t, api.WithRecoverLimit(3))
	t0 := time.Now().Add(-time.Hour).Truncate(time.Second)
	for i := range 5 {
		a := deliverer.Attempt{Tenant: "acme", EndpointID: ep, EventID: fmt.Sprintf("evt_%024d", i), EventType: "agent.created",
			Attempt: 1, Status: 500, Outcome: "failed", Trigger: "scheduled", At: t0.Add(time.Duration(i) * time.Second)}
		if err := ix.Add(context.Background(), 0, int64(i), a); err != nil {
			t.Fatal(err)
		}
	}
	split := t0.Add(2 * time.Second).UTC().Format(time.RFC3339) // the newest three start there
	r, _ := jobDo(t, "POST", base+"/v1/endpoints/"+ep+"/recover", "tok-acme", "", `{"since":"`+t0.UTC().Format(time.RFC3339)+`"}`)
	var e struct {
		Error struct{ Code, Field, Message string }
	}
	r.decode(t, &e)
	if r.status != 422 || e.Error.Field != "/since" || !strings.Contains(e.Error.Message, "more than 3 events") || !strings.Contains(e.Error.Message, split) {
		t.Fatalf("recover of 5 events with a limit of 3: %d %s, want 422 naming /since and %s", r.status, r.body, split)
	}
	r, _ = jobDo(t, "POST", base+"/v1/endpoints/"+ep+"/recover", "tok-acme", "", `{"since":"`+split+`"}`)
	if r.status != 202 {
		t.Fatalf("recover since %s: %d %s, want 202", split, r.status, r.body)
	}
}
