package api_test

import (
	"testing"
	"time"
)

// TestJobsIdempotencyKeyReused: an Idempotency-Key used again with another
// body answers 400 idempotency_error naming the field that differs, or
// another target with no field; the same key and body get the first job;
// keys are per tenant.
func TestJobsIdempotencyKeyReused(t *testing.T) {
	base, ep := jobsStack(t)
	var other epView
	epDo(t, "POST", base+"/v1/endpoints", "tok-other", epCreateBody).decode(t, &other)
	since := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)
	body := `{"since":"` + since + `","rate":1}`
	type accepted struct{ Job struct{ ID string } }
	var first accepted
	r, _ := jobDo(t, "POST", base+"/v1/endpoints/"+ep+"/replay", "tok-acme", "k-1", body)
	r.decode(t, &first)
	if r.status != 202 {
		t.Fatalf("replay: %d %s", r.status, r.body)
	}
	for _, c := range []struct {
		name, path, token, body string
		status                  int
		code, field             string
	}{
		{"same body", "/v1/endpoints/" + ep + "/replay", "tok-acme", body, 202, "", ""},
		{"another rate", "/v1/endpoints/" + ep + "/replay", "tok-acme", `{"since":"` + since + `","rate":2}`, 400, "idempotency_error", "/rate"},
		{"a field added", "/v1/endpoints/" + ep + "/replay", "tok-acme", `{"since":"` + since + `","rate":1,"types":["agent.created"]}`, 400, "idempotency_error", "/types"},
		{"another route", "/v1/endpoints/" + ep + "/recover", "tok-acme", body, 400, "idempotency_error", ""},
		{"another tenant", "/v1/endpoints/" + other.ID + "/replay", "tok-other", body, 202, "", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			r, h := jobDo(t, "POST", base+c.path, c.token, "k-1", c.body)
			var got struct {
				Job   struct{ ID string }
				Error struct{ Code, Field, Message string }
			}
			r.decode(t, &got)
			if r.status != c.status || got.Error.Code != c.code || got.Error.Field != c.field {
				t.Fatalf("%d %s, want %d %q naming %q", r.status, r.body, c.status, c.code, c.field)
			}
			sameJob := got.Job.ID == first.Job.ID
			if c.status == 202 && sameJob != (c.token == "tok-acme") || sameJob != (h.Get("Idempotent-Replayed") == "true") {
				t.Fatalf("%s (replayed %q): the first job is %s; only the same tenant's same request gets it", r.body, h.Get("Idempotent-Replayed"), first.Job.ID)
			}
		})
	}
}
