package api_test

import (
	"context"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/hookstream/hookstream/deliverer"
	"github.com/hookstream/hookstream/internal/api"
	"github.com/hookstream/hookstream/internal/deliverylog"
)

type attemptsReply struct {
	Data []struct {
		ID         string `json:"id"`
		EventID    string `json:"event_id"`
		EndpointID string `json:"endpoint_id"`
		Outcome    string `json:"outcome"`
		ErrorClass string `json:"error_class"`
		Trigger    string `json:"trigger"`
		StatusCode int    `json:"status_code"`
	}
	Next, Prev *string
	Window     struct{ Since, Until time.Time }
}

// logStack is the API with endpoints of two tenants and a delivery log
// holding attempts of both.
func logStack(t *testing.T) (base, acmeEP, otherEP string, ix *deliverylog.Index) {
	t.Helper()
	var st *epStack
	lazy := &lazyLog{}
	st = startEndpointsAPI(t, api.WithDeliveryLog(lazy))
	ix = deliverylog.NewIndex(st.redis.Client, 0)
	lazy.Index = ix
	var a, o epView
	epDo(t, "POST", st.base+"/v1/endpoints", "tok-acme", epCreateBody).decode(t, &a)
	epDo(t, "POST", st.base+"/v1/endpoints", "tok-admin", `{"tenant":"other","url":"https://1.1.1.1/","events":["*"]}`).decode(t, &o)
	if a.ID == "" || o.ID == "" {
		t.Fatal("endpoints not created")
	}
	ctx := context.Background()
	now := time.Now().UTC()
	for i, st := range []int{200, 500, 0} {
		at := deliverer.Attempt{Tenant: "acme", EndpointID: a.ID, EventID: "evt_acme", EventType: "agent.created",
			Attempt: i + 1, Status: st, Outcome: "failed", Trigger: "scheduled", At: now.Add(time.Duration(i) * time.Millisecond)}
		switch st {
		case 200:
			at.Outcome = "delivered"
		case 500:
			at.ErrorClass = "http_status"
		case 0:
			at.ErrorClass = "timeout"
		}
		if err := ix.Add(ctx, 0, int64(i), at); err != nil {
			t.Fatal(err)
		}
	}
	if err := ix.Add(ctx, 1, 0, deliverer.Attempt{Tenant: "other", EndpointID: o.ID, EventID: "evt_other",
		Attempt: 1, Status: 200, Outcome: "delivered", Trigger: "scheduled", At: now}); err != nil {
		t.Fatal(err)
	}
	return st.base, a.ID, o.ID, ix
}

// lazyLog lets the test build the index on the stack's Redis after the
// stack started.
type lazyLog struct{ *deliverylog.Index }

func TestAttemptsRoutes(t *testing.T) {
	base, acmeEP, otherEP, _ := logStack(t)
	get := func(path, token string) (epReply, attemptsReply) {
		r := epDo(t, "GET", base+path, token, "")
		var a attemptsReply
		if r.status == http.StatusOK {
			r.decode(t, &a)
		}
		return r, a
	}

	r, all := get("/v1/endpoints/"+acmeEP+"/attempts", "tok-acme")
	if r.status != 200 || len(all.Data) != 3 || all.Window.Since.IsZero() || all.Window.Until.IsZero() {
		t.Fatalf("acme's attempts: %d %s", r.status, r.body)
	}
	if d := all.Data[0]; d.ErrorClass != "timeout" || d.Trigger != "scheduled" || d.EndpointID != acmeEP {
		t.Errorf("newest attempt %+v, want the timeout", d)
	}
	filters := []struct {
		query string
		want  int
	}{
		{"code_class=5xx", 1},
		{"status_code=200", 1},
		{"outcome=failed", 2},
		{"error_class=timeout", 1},
		{"event_id=evt_other", 0},
		{"trigger=recover", 0},
		{"since=" + url.QueryEscape(time.Now().Add(time.Hour).Format(time.RFC3339)), 0},
		{"limit=2", 2},
	}
	for _, f := range filters {
		if r, got := get("/v1/endpoints/"+acmeEP+"/attempts?"+f.query, "tok-acme"); r.status != 200 || len(got.Data) != f.want {
			t.Errorf("?%s: %d, %d attempts, want %d", f.query, r.status, len(got.Data), f.want)
		}
	}
	_, page := get("/v1/endpoints/"+acmeEP+"/attempts?limit=2", "tok-acme")
	if page.Next == nil {
		t.Fatal("no next cursor after 2 of 3")
	}
	if r, rest := get("/v1/endpoints/"+acmeEP+"/attempts?limit=2&cursor="+*page.Next, "tok-acme"); r.status != 200 || len(rest.Data) != 1 || rest.Next != nil {
		t.Errorf("second page: %d %s, want the last attempt and no next", r.status, r.body)
	}

	// Tenant isolation: another tenant's endpoint, event, attempt and
	// cursor are 404; the admin token sees what the tenant it names sees.
	id := all.Data[0].ID
	notFound := []struct{ path, token string }{
		{"/v1/endpoints/" + acmeEP + "/attempts", "tok-other"},
		{"/v1/events/evt_acme/attempts", "tok-other"},
		{"/v1/attempts/" + id, "tok-other"},
		{"/v1/endpoints/" + otherEP + "/attempts?cursor=" + *page.Next, "tok-other"},
		{"/v1/endpoints/" + acmeEP + "/attempts?tenant=other", "tok-admin"},
		{"/v1/attempts/" + id + "?tenant=other", "tok-admin"},
		{"/v1/events/nope/attempts", "tok-acme"},
		{"/v1/events/evt_acme", "tok-other"},
		{"/v1/events/evt_acme?tenant=other", "tok-admin"},
	}
	for _, c := range notFound {
		if r, _ := get(c.path, c.token); r.status != http.StatusNotFound {
			t.Errorf("%s as %s: %d %s, want 404", c.path, c.token, r.status, r.body)
		}
	}
	found := []struct {
		path, token string
		want        int
	}{
		{"/v1/endpoints/" + acmeEP + "/attempts?tenant=acme", "tok-admin", 3},
		{"/v1/endpoints/" + otherEP + "/attempts?tenant=other", "tok-admin", 1},
		{"/v1/events/evt_acme/attempts", "tok-acme", 3},
		{"/v1/events/evt_other/attempts?tenant=other", "tok-admin", 1},
	}
	for _, c := range found {
		if r, got := get(c.path, c.token); r.status != 200 || len(got.Data) != c.want {
			t.Errorf("%s as %s: %d %s, want %d attempts", c.path, c.token, r.status, r.body, c.want)
		}
	}
	var ev struct {
		Event      struct{ ID, Status string }
		Deliveries []struct {
			EndpointID string `json:"endpoint_id"`
			Status     string `json:"status"`
			Attempts   int    `json:"attempts"`
		}
	}
	r = epDo(t, "GET", base+"/v1/events/evt_acme?tenant=acme", "tok-admin", "")
	if r.status == 200 {
		r.decode(t, &ev)
	}
	if r.status != 200 || ev.Event.ID != "evt_acme" || len(ev.Deliveries) != 1 || ev.Deliveries[0].Attempts != 3 || ev.Deliveries[0].Status != "retrying" {
		t.Errorf("GET event as admin for acme: %d %s, want one delivery retrying after 3 attempts", r.status, r.body)
	}
	if r := epDo(t, "GET", base+"/v1/attempts/"+id, "tok-acme", ""); r.status != 200 {
		t.Errorf("GET attempt as its tenant: %d %s", r.status, r.body)
	}

	bad := []struct{ query, field string }{
		{"limit=0", "/limit"},
		{"limit=251", "/limit"},
		{"status_code=abc", "/status_code"},
		{"code_class=6xx", "/code_class"},
		{"since=yesterday", "/since"},
		{"cursor=garbage", "/cursor"},
	}
	for _, b := range bad {
		r := epDo(t, "GET", base+"/v1/endpoints/"+acmeEP+"/attempts?"+b.query, "tok-acme", "")
		if code, field := r.errorField(t); r.status != http.StatusBadRequest || code != api.CodeInvalid || field != b.field {
			t.Errorf("?%s: %d %s, want 400 naming %s", b.query, r.status, r.body, b.field)
		}
	}
}
