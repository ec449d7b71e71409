package deliverer_test

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/segmentio/encoding/json"

	"github.com/hookstream/hookstream/deliverer"
	"github.com/hookstream/hookstream/internal/testenv"
)

// TestInFlightAnnounced: a request that runs past InFlightAfter is
// announced in the attempts topic before its own record; one that answers
// at once costs no announcement.
func TestInFlightAnnounced(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Webhook-Id") == eventID(0, 1) {
			time.Sleep(2 * deliverer.InFlightAfter) // announcements are checked for every InFlightAfter/2
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(srv.Close)
	ep := e.endpoint(t, srv.URL, "")
	e.start(t, runOpts{})
	e.deliver(t, ep, 0, 1, 2)
	var got []deliverer.Attempt
	testenv.Eventually(t, 20*time.Second, "both attempts recorded", func() bool {
		got = got[:0]
		for _, r := range e.kafka.ReadAll(t, e.topics.Attempts) {
			var a deliverer.Attempt
			if err := json.Unmarshal(r.Value, &a); err != nil {
				t.Fatal(err)
			}
			got = append(got, a)
		}
		return len(got) >= 3
	})
	want := []struct{ event, outcome string }{
		{eventID(0, 1), deliverer.OutcomeDelivering}, {eventID(0, 1), "delivered"}, {eventID(0, 2), "delivered"},
	}
	if len(got) != len(want) {
		t.Fatalf("attempts records %+v, want %v", got, want)
	}
	for i, w := range want {
		if got[i].EventID != w.event || got[i].Outcome != w.outcome || got[i].Attempt != 1 {
			t.Errorf("record %d: %s %s attempt %d, want %s %s attempt 1", i, got[i].EventID, got[i].Outcome, got[i].Attempt, w.event, w.outcome)
		}
	}
	if a := got[0]; a.Status != 0 || a.Tenant != ep.Tenant || a.EndpointID != ep.ID || a.At.After(got[1].At) {
		t.Errorf("announcement %+v: want no status, the delivery's tenant and endpoint, and the attempt's start", a)
	}
}
