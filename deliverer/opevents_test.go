package deliverer_test

import (
	"bytes"
	"testing"
	"time"

	"github.com/segmentio/encoding/json"

	"github.com/hookstream/hookstream/deliverer"
	"github.com/hookstream/hookstream/envelope"
	"github.com/hookstream/hookstream/internal/record"
	"github.com/hookstream/hookstream/internal/testenv"
	"github.com/hookstream/hookstream/producer"
)

// TestOperationalEvents: a delivery whose retries run out publishes
// attempt.exhausted to its tenant, and the endpoint's next 2xx publishes
// endpoint.recovered; both valid against the catalog.
func TestOperationalEvents(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 1)
	rc, ep := e.receiverEndpoint(t, "", failing(1, always, 500))
	pub := producer.New(e.client, e.catalog, producer.WithTopicPrefix(prefix))
	e.start(t, runOpts{schedule: "0s,50ms,50ms", extra: []deliverer.Option{
		deliverer.WithPublisher(pub), deliverer.WithRecoveredAfter(time.Millisecond),
	}})
	e.deliver(t, ep, 0, 1, 2)
	testenv.Eventually(t, 20*time.Second, "event 2 delivered", func() bool { return rc.delivered() == 1 })

	found := map[string]envelope.Event{}
	testenv.Eventually(t, 20*time.Second, "attempt.exhausted and endpoint.recovered published", func() bool {
		for _, r := range e.kafka.ReadAll(t, e.topics.Events) {
			ev, err := envelope.Decode(r.Value, 0)
			if err != nil || string(record.Header(r, record.HeaderTenant)) != ep.Tenant {
				continue
			}
			if err := e.catalog.Validate(ev.Event, ev.Data); err != nil {
				t.Errorf("%s: %v", r.Value, err)
			}
			found[ev.Event] = ev
		}
		return len(found[deliverer.EventExhausted].Data) > 0 && len(found[deliverer.EventRecovered].Data) > 0
	})
	var ex struct {
		EndpointID     string `json:"endpoint_id"`
		EventID        string `json:"event_id"`
		Attempts       int    `json:"attempts"`
		LastStatusCode int    `json:"last_status_code"`
	}
	if err := json.Unmarshal(found[deliverer.EventExhausted].Data, &ex); err != nil {
		t.Fatal(err)
	}
	if ex.EndpointID != ep.ID || ex.EventID != eventID(0, 1) || ex.Attempts != 3 || ex.LastStatusCode != 500 {
		t.Errorf("attempt.exhausted data %s, want event 1 to %s after 3 attempts, last 500", found[deliverer.EventExhausted].Data, ep.ID)
	}
	if rec := found[deliverer.EventRecovered].Data; !bytes.Contains(rec, []byte(ep.ID)) || !bytes.Contains(rec, []byte(`"failing_since"`)) {
		t.Errorf("endpoint.recovered data %s", rec)
	}
}
