package cli

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/segmentio/encoding/json"
)

// receiver records the event ids POSTed to it, answering 500 while failing.
type receiver struct {
	srv     *httptest.Server
	mu      sync.Mutex
	ids     []string
	bodies  [][]byte
	failing atomic.Bool
}

func newReceiver(t *testing.T) *receiver {
	rv := &receiver{}
	rv.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var e struct{ ID string }
		_ = json.Unmarshal(b, &e)
		if rv.failing.Load() {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		rv.mu.Lock()
		rv.ids = append(rv.ids, e.ID)
		rv.bodies = append(rv.bodies, b)
		rv.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(rv.srv.Close)
	return rv
}

func (rv *receiver) got() []string {
	rv.mu.Lock()
	defer rv.mu.Unlock()
	return slices.Clone(rv.ids)
}

// TestDevRecoverAfterOutage: an endpoint answers 500 until every event
// went dead on a two-attempt schedule; it is fixed and recovered, and gets
// every event once, in the original order; the other endpoint gets
// nothing more. A test event reaches the endpoint alone, and ?wait=
// answers with its attempt.
func TestDevRecoverAfterOutage(t *testing.T) {
	down, other, ops := newReceiver(t), newReceiver(t), newReceiver(t)
	down.failing.Store(true)
	p := startDev(t, t.TempDir(), "--data-dir", "", "--kafka-addr", freeAddr(t), "--http-addr", freeAddr(t),
		"--shutdown-grace", "3s", "--retry-schedule", "0s,100ms")
	ready := p.waitMatch(readyLine)
	apiURL, token := ready[1], ready[2]
	start := time.Now().Add(-time.Second).UTC().Format(time.RFC3339)
	if code := apiCall(t, http.MethodPost, apiURL+"/v1/endpoints", token, map[string]any{"url": ops.srv.URL, "events": []string{"job.*"}}, nil); code != http.StatusCreated {
		t.Fatalf("create the job.* endpoint: %d", code)
	}
	var a, b struct{ ID string }
	for _, x := range []struct {
		url string
		ep  *struct{ ID string }
	}{{down.srv.URL, &a}, {other.srv.URL, &b}} {
		if code := apiCall(t, http.MethodPost, apiURL+"/v1/endpoints", token, map[string]any{"url": x.url, "events": []string{"agent.*"}}, x.ep); code != http.StatusCreated {
			t.Fatalf("create endpoint: %d", code)
		}
	}
	const n = 30
	var ids []string
	for i := range n {
		var out struct{ ID string }
		data := map[string]any{"agent_id": fmt.Sprintf("agt_%d", i), "name": "Bot", "model": "m", "created_by": 1}
		if code := apiCall(t, http.MethodPost, apiURL+"/v1/events", token, map[string]any{"event": "agent.created", "data": data}, &out); code != http.StatusAccepted {
			t.Fatalf("publish: %d", code)
		}
		ids = append(ids, out.ID)
	}
	p.WaitFor(t, "every event dead for the failing endpoint", time.Minute, func() bool {
		for _, id := range ids {
			var ev struct {
				Deliveries []struct {
					EndpointID string `json:"endpoint_id"`
					Status     string `json:"status"`
				}
			}
			if apiCall(t, http.MethodGet, apiURL+"/v1/events/"+id, token, nil, &ev) != http.StatusOK {
				return false
			}
			dead := false
			for _, d := range ev.Deliveries {
				dead = dead || d.EndpointID == a.ID && d.Status == "dead"
			}
			if !dead {
				return false
			}
		}
		return true
	})
	if got := other.got(); !slices.Equal(got, ids) {
		t.Fatalf("the healthy endpoint got %d events, want the %d in order", len(got), n)
	}

	down.failing.Store(false)
	// Through the CLI: start the job and follow it to its end.
	cli := apiCLI(t, apiURL, token)
	code, out, errOut := cli("endpoints", "recover", a.ID, "--since", start, "--wait")
	var job struct {
		ID, State   string
		Total, Sent int64
	}
	if err := json.Unmarshal([]byte(out), &job); code != 0 || err != nil {
		t.Fatalf("endpoints recover --wait: exit %d, %v\n%s\n%s", code, err, out, errOut)
	}
	if job.State != "done" || job.Total != n || job.Sent != n || !strings.Contains(errOut, job.ID+" done") {
		t.Fatalf("job %+v (progress %q), want done with %d sent", job, errOut, n)
	}
	if code, out, _ := cli("jobs", "list"); code != 0 || !strings.Contains(out, job.ID) {
		t.Fatalf("jobs list: exit %d\n%s", code, out)
	}
	p.WaitFor(t, "job.completed", time.Minute, func() bool { return len(ops.got()) > 0 })
	ops.mu.Lock()
	var completed struct {
		Event string
		Data  struct {
			JobID string `json:"job_id"`
			State string
			Sent  int64
		}
	}
	err := json.Unmarshal(ops.bodies[0], &completed)
	ops.mu.Unlock()
	if err != nil || completed.Event != "job.completed" || completed.Data.JobID != job.ID || completed.Data.State != "done" || completed.Data.Sent != n {
		t.Fatalf("operational event %+v (%v), want job.completed of %s, done, %d sent", completed, err, job.ID, n)
	}
	p.WaitFor(t, "the recovered endpoint to get every event", time.Minute, func() bool { return len(down.got()) >= n })
	time.Sleep(time.Second) // anything sent twice or to the other endpoint shows by now
	if got := down.got(); !slices.Equal(got, ids) {
		t.Fatalf("recovered endpoint got %v, want every event once in the original order %v", got, ids)
	}
	if got := other.got(); len(got) != n {
		t.Fatalf("the other endpoint got %d events after the recover, want the %d it had", len(got), n)
	}
	// Once the log has the recovered attempts, recovering again finds
	// nothing left to send.
	p.WaitFor(t, "the recovered attempts in the log", time.Minute, func() bool {
		var page struct{ Data []any }
		apiCall(t, http.MethodGet, apiURL+"/v1/endpoints/"+a.ID+"/attempts?trigger=recover&outcome=delivered&limit=250", token, nil, &page)
		return len(page.Data) == n
	})
	var again struct{ Job struct{ Total int64 } }
	if code := apiCall(t, http.MethodPost, apiURL+"/v1/endpoints/"+a.ID+"/recover", token, map[string]any{"since": start}, &again); code != http.StatusAccepted || again.Job.Total != 0 {
		t.Fatalf("second recover: %d, %d to send; want nothing left", code, again.Job.Total)
	}

	// A test event goes to this endpoint only, trigger test.
	var sent struct {
		EventID string `json:"event_id"`
		Attempt *struct {
			Trigger string `json:"trigger"`
			Outcome string `json:"outcome"`
		} `json:"attempt"`
	}
	if code := apiCall(t, http.MethodPost, apiURL+"/v1/endpoints/"+a.ID+"/test?wait=20s", token, map[string]any{}, &sent); code != http.StatusOK {
		t.Fatalf("test event: %d", code)
	}
	if sent.Attempt == nil || sent.Attempt.Trigger != "test" || sent.Attempt.Outcome != "delivered" {
		t.Fatalf("test event answer %+v, want its delivered attempt with trigger test", sent)
	}
	if got := down.got(); len(got) != n+1 || got[n] != sent.EventID || len(other.got()) != n {
		t.Fatalf("after the test event: endpoint got %d (last %v), other %d; want the test event to the endpoint alone", len(got), got[len(got)-1], len(other.got()))
	}

	// A resend to one endpoint: the same event, to it alone.
	if code, out, errOut := cli("events", "resend", ids[0], "--endpoints", b.ID, "--wait"); code != 0 {
		t.Fatalf("events resend: exit %d\n%s\n%s", code, out, errOut)
	}
	p.WaitFor(t, "the resent event", time.Minute, func() bool { return len(other.got()) == n+1 })
	if got := other.got(); got[n] != ids[0] || len(down.got()) != n+1 {
		t.Fatalf("resend: other got %v last, endpoint %d; want %s to the other alone", got[n], len(down.got()), ids[0])
	}
}
