package api_test

import (
	"context"
	"encoding/json"
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

// TestRefusedRecoverLeavesEndpointDisabled: "enable": true enables a
// disabled endpoint only for a recover that is accepted; a refused one
// (window too large, idempotency key reused with other parameters)
// answers its error and changes nothing.
func TestRefusedRecoverLeavesEndpointDisabled(t *testing.T) {
	since := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)
	tests := []struct {
		name   string
		limit  int
		first  string // a recover made before the endpoint is disabled, with key k1
		key    string
		status int
	}{
		{name: "window too large", limit: 1, status: 422},
		{name: "key reused", first: `{"since":"` + since + `"}`, key: "k1", status: 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			limit := tt.limit
			if limit == 0 {
				limit = 100
			}
			base, ep, ix := jobsStackWith(t, api.WithRecoverLimit(limit))
			now := time.Now().UTC()
			for i, ev := range []string{"evt_a", "evt_b"} {
				if err := ix.Add(context.Background(), 0, int64(i), deliverer.Attempt{Tenant: "acme", EndpointID: ep, EventID: ev,
					EventType: "agent.created", Attempt: 1, Status: 500, Outcome: "failed", ErrorClass: "http_status",
					Trigger: "scheduled", At: now.Add(-time.Duration(i+1) * time.Minute)}); err != nil {
					t.Fatal(err)
				}
			}
			if tt.first != "" {
				if r, _ := jobDo(t, "POST", base+"/v1/endpoints/"+ep+"/recover", "tok-acme", tt.key, tt.first); r.status != 202 {
					t.Fatalf("first recover: %d %s", r.status, r.body)
				}
			}
			if r := epDo(t, "PATCH", base+"/v1/endpoints/"+ep, "tok-acme", `{"disabled":true}`); r.status != 200 {
				t.Fatalf("disable: %d %s", r.status, r.body)
			}
			r, _ := jobDo(t, "POST", base+"/v1/endpoints/"+ep+"/recover", "tok-acme", tt.key, `{"since":"`+since+`","enable":true}`)
			if r.status != tt.status {
				t.Fatalf("recover: %d %s, want %d", r.status, r.body, tt.status)
			}
			var e epView
			epDo(t, "GET", base+"/v1/endpoints/"+ep, "tok-acme", "").decode(t, &e)
			if !e.Disabled {
				t.Fatalf("recover answered %d, yet the endpoint is enabled (version %d)", r.status, e.Version)
			}
			// Accepted, it enables the endpoint.
			r, _ = jobDo(t, "POST", base+"/v1/endpoints/"+ep+"/recover", "tok-acme", "k2", `{"since":"`+now.Add(-90*time.Second).Format(time.RFC3339)+`","enable":true}`)
			if r.status != 202 {
				t.Fatalf("recover of one event: %d %s, want 202", r.status, r.body)
			}
			epDo(t, "GET", base+"/v1/endpoints/"+ep, "tok-acme", "").decode(t, &e)
			if e.Disabled {
				t.Fatal("an accepted recover with enable left the endpoint disabled")
			}
		})
	}
}

// TestReplayToDisabledEndpoint: a replay to a disabled endpoint is
// refused (409) and starts no job: the deliverer would dead-letter every
// record of it.
func TestReplayToDisabledEndpoint(t *testing.T) {
	base, ep := jobsStack(t)
	if r := epDo(t, "PATCH", base+"/v1/endpoints/"+ep, "tok-acme", `{"disabled":true}`); r.status != 200 {
		t.Fatalf("disable: %d %s", r.status, r.body)
	}
	since := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)
	if r, _ := jobDo(t, "POST", base+"/v1/endpoints/"+ep+"/replay", "tok-acme", "", `{"since":"`+since+`"}`); r.status != 409 {
		t.Fatalf("replay to a disabled endpoint: %d %s, want 409", r.status, r.body)
	}
	var jobs struct{ Data []json.RawMessage }
	epDo(t, "GET", base+"/v1/jobs", "tok-acme", "").decode(t, &jobs)
	if len(jobs.Data) != 0 {
		t.Fatalf("jobs after a refused replay: %d, want none", len(jobs.Data))
	}
}
