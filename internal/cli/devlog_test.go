package cli

import (
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/segmentio/encoding/json"

	"github.com/hookstream/hookstream/envelope"
	"github.com/hookstream/hookstream/schemas"
)

// TestDevDeliveryLog publishes one event through `hookstream dev` to five
// endpoints (healthy, answering 500, refusing connections, timing out,
// disabled) on a two-attempt schedule, and one event that matches nothing,
// and reads the delivery log back: each endpoint's attempts with the right
// outcome and error class, each delivery's status (delivered, dead,
// canceled), the unmatched event as no_endpoints, and the
// attempt.exhausted events the dead deliveries published.
func TestDevDeliveryLog(t *testing.T) {
	ok := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(204) }))
	t.Cleanup(ok.Close)
	fail := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(500)
		_, _ = w.Write([]byte("boom"))
	}))
	t.Cleanup(fail.Close)
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	}))
	t.Cleanup(slow.Close)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := "http://" + l.Addr().String() + "/hook"
	l.Close()

	dir := t.TempDir()
	p := startDev(t, dir, "--data-dir", "", "--kafka-addr", freeAddr(t), "--http-addr", freeAddr(t),
		"--shutdown-grace", "3s", "--retry-schedule", "0s,100ms")
	ready := p.waitMatch(readyLine)
	apiURL, token := ready[1], ready[2]

	type want struct {
		url, outcome, class string
		attempts, status    int
	}
	wants := []*want{
		{ok.URL, "delivered", "", 1, 204},
		{fail.URL, "failed", "http_status", 2, 500},
		{refused, "failed", "connection_refused", 2, 0},
		{slow.URL, "failed", "timeout", 2, 0},
	}
	ids := map[string]*want{}
	for _, w := range wants {
		var ep struct{ ID string }
		if code := apiCall(t, http.MethodPost, apiURL+"/v1/endpoints", token, map[string]any{
			"url": w.url, "events": []string{"agent.created"}, "timeout": "1s",
		}, &ep); code != http.StatusCreated {
			t.Fatalf("create endpoint %s: %d", w.url, code)
		}
		ids[ep.ID] = w
	}
	// A disabled endpoint gets no delivery; the log shows it canceled.
	var off struct{ ID string }
	if code := apiCall(t, http.MethodPost, apiURL+"/v1/endpoints", token, map[string]any{"url": ok.URL, "events": []string{"agent.created"}}, &off); code != http.StatusCreated {
		t.Fatalf("create endpoint: %d", code)
	}
	if code := apiCall(t, http.MethodPatch, apiURL+"/v1/endpoints/"+off.ID, token, map[string]any{"disabled": true}, nil); code != http.StatusOK {
		t.Fatalf("disable endpoint: %d", code)
	}
	catalog, err := schemas.Load()
	if err != nil {
		t.Fatal(err)
	}
	var data json.RawMessage
	for _, typ := range catalog.Types() {
		if typ.Name == "agent.created" {
			e, err := envelope.Decode(typ.Envelope, 0)
			if err != nil {
				t.Fatal(err)
			}
			data = e.Data
		}
	}
	var published struct{ ID string }
	if code := apiCall(t, http.MethodPost, apiURL+"/v1/events", token, map[string]any{"event": "agent.created", "data": data}, &published); code != http.StatusAccepted {
		t.Fatalf("publish: %d", code)
	}
	// An event nobody subscribes to is in the log too.
	var unmatched struct{ ID string }
	if code := apiCall(t, http.MethodPost, apiURL+"/v1/events", token, map[string]any{"event": "tool.executed", "data": example(t, catalog, "tool.executed")}, &unmatched); code != http.StatusAccepted {
		t.Fatalf("publish: %d", code)
	}

	type attempt struct {
		ID         string            `json:"id"`
		EventID    string            `json:"event_id"`
		EndpointID string            `json:"endpoint_id"`
		Attempt    int               `json:"attempt"`
		Outcome    string            `json:"outcome"`
		StatusCode int               `json:"status_code"`
		ErrorClass string            `json:"error_class"`
		Trigger    string            `json:"trigger"`
		Response   string            `json:"response_body"`
		Headers    map[string]string `json:"request_headers"`
	}
	var got []attempt
	p.WaitFor(t, "7 attempts in the delivery log", time.Minute, func() bool {
		var page struct{ Data []attempt }
		code := apiCall(t, http.MethodGet, apiURL+"/v1/events/"+published.ID+"/attempts", token, nil, &page)
		got = page.Data
		return code == http.StatusOK && len(got) >= 7
	})
	byEP := map[string][]attempt{}
	for _, a := range got {
		// Headers and the response body are read back from Kafka, for
		// one attempt at a time.
		if code := apiCall(t, http.MethodGet, apiURL+"/v1/attempts/"+a.ID, token, nil, &a); code != http.StatusOK {
			t.Fatalf("GET /v1/attempts/%s: %d", a.ID, code)
		}
		byEP[a.EndpointID] = append(byEP[a.EndpointID], a)
		if a.EventID != published.ID || a.Trigger != "scheduled" || a.Headers["Webhook-Signature"] != "[redacted]" || a.Headers["Webhook-Id"] != published.ID {
			t.Errorf("attempt %+v: want the event, trigger scheduled, headers with the signature redacted", a)
		}
	}
	for id, w := range ids {
		as := byEP[id]
		if len(as) != w.attempts {
			t.Errorf("%s: %d attempts, want %d", w.url, len(as), w.attempts)
			continue
		}
		for _, a := range as {
			if a.Outcome != w.outcome || a.ErrorClass != w.class || a.StatusCode != w.status {
				t.Errorf("%s: attempt %+v, want %s, class %q, status %d", w.url, a, w.outcome, w.class, w.status)
			}
		}
		if w.status == 500 && as[0].Response != "boom" {
			t.Errorf("500's response body %q, want boom", as[0].Response)
		}
		var page struct{ Data []attempt }
		if code := apiCall(t, http.MethodGet, apiURL+"/v1/endpoints/"+id+"/attempts?limit=1", token, nil, &page); code != 200 || len(page.Data) != 1 || page.Data[0].Attempt != w.attempts {
			t.Errorf("%s: newest of the endpoint's attempts: %d %+v, want attempt %d", w.url, code, page.Data, w.attempts)
		}
	}

	// The event's deliveries: the healthy one delivered, the failing ones
	// dead after their two attempts, with where the event's bytes are.
	type delivery struct {
		EndpointID     string `json:"endpoint_id"`
		Status         string `json:"status"`
		Attempts       int    `json:"attempts"`
		LastStatusCode *int   `json:"last_status_code"`
	}
	var ev struct {
		Event struct {
			ID, Event string
			Data      json.RawMessage
		}
		Status     string
		Deliveries []delivery
	}
	p.WaitFor(t, "the event's deliveries settled", time.Minute, func() bool {
		code := apiCall(t, http.MethodGet, apiURL+"/v1/events/"+published.ID, token, nil, &ev)
		if code != http.StatusOK || len(ev.Deliveries) != 5 {
			return false
		}
		for _, d := range ev.Deliveries {
			if d.Status != "delivered" && d.Status != "dead" && d.Status != "canceled" {
				return false
			}
		}
		return true
	})
	if ev.Event.ID != published.ID || ev.Event.Event != "agent.created" || ev.Status != "dead" || len(ev.Event.Data) == 0 {
		t.Errorf("event %+v status %s, want agent.created as published, status dead", ev.Event, ev.Status)
	}
	for _, d := range ev.Deliveries {
		if d.EndpointID == off.ID {
			if d.Status != "canceled" || d.Attempts != 0 {
				t.Errorf("delivery to the disabled endpoint %+v, want canceled, no attempt", d)
			}
			continue
		}
		w := ids[d.EndpointID]
		if w == nil {
			t.Errorf("delivery to an unknown endpoint: %+v", d)
			continue
		}
		wantStatus := "dead"
		if w.outcome == "delivered" {
			wantStatus = "delivered"
		}
		if d.Status != wantStatus || d.Attempts != w.attempts || d.LastStatusCode == nil || *d.LastStatusCode != w.status {
			t.Errorf("delivery %+v, want %s after %d attempts", d, wantStatus, w.attempts)
		}
	}
	var none struct {
		Status     string
		Deliveries []delivery
	}
	if code := apiCall(t, http.MethodGet, apiURL+"/v1/events/"+unmatched.ID, token, nil, &none); code != 200 || none.Status != "no_endpoints" || len(none.Deliveries) != 0 {
		t.Errorf("the unmatched event: %d %+v, want no_endpoints", code, none)
	}
	// Each failing delivery that went dead told the tenant: attempt.exhausted
	// is in its events.
	p.WaitFor(t, "three attempt.exhausted events", time.Minute, func() bool {
		var page struct{ Data []struct{ ID string } }
		code := apiCall(t, http.MethodGet, apiURL+"/v1/events?type=attempt.exhausted", token, nil, &page)
		return code == 200 && len(page.Data) == 3
	})
	if code := apiCall(t, http.MethodGet, apiURL+"/v1/events/evt_000000000000000000000000", token, nil, nil); code != http.StatusNotFound {
		t.Errorf("unknown event: %d, want 404", code)
	}
	p.stop(3 * time.Second)
}

// example is the catalog's example data of eventType.
func example(t *testing.T, catalog *schemas.Catalog, eventType string) json.RawMessage {
	t.Helper()
	for _, typ := range catalog.Types() {
		if typ.Name == eventType {
			e, err := envelope.Decode(typ.Envelope, 0)
			if err != nil {
				t.Fatal(err)
			}
			return e.Data
		}
	}
	t.Fatalf("no %s in the catalog", eventType)
	return nil
}
