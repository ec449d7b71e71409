package deliverer_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/encoding/json"

	"github.com/hookstream/hookstream/deliverer"
	"github.com/hookstream/hookstream/internal/testenv"
	"github.com/hookstream/hookstream/sender"
	"github.com/hookstream/hookstream/subscription"
)

// TestEndpointTimeoutAndAttempts gives an endpoint a request timeout shorter
// than the deliverer's: the slow first answer is a timeout, the retry is
// delivered, and the attempts topic records both with what happened.
func TestEndpointTimeoutAndAttempts(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 1)
	rc := newReceiver(t, func(n, try int) int {
		if try == 1 {
			time.Sleep(2 * time.Second) // past the endpoint's 1s, within the deliverer's 5s
		}
		return 200
	})
	ep, err := e.store.Create(ctxFor(t, 30*time.Second), tenant, subscription.EndpointInput{
		URL: rc.srv.URL, Events: []string{"*"}, Timeout: time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	rc.setSecret(ep)
	e.start(t, runOpts{schedule: "0s,50ms"})
	e.deliver(t, ep, 0, 1, 1)
	testenv.Eventually(t, 20*time.Second, "the delivery", func() bool { return rc.delivered() == 1 })
	var got []deliverer.Attempt
	testenv.Eventually(t, 20*time.Second, "two attempt records", func() bool {
		got = got[:0]
		for _, r := range e.kafka.ReadAll(t, e.topics.Attempts) {
			var a deliverer.Attempt
			if err := json.Unmarshal(r.Value, &a); err != nil {
				t.Fatalf("attempt record %q: %v", r.Value, err)
			}
			if string(r.Key) != ep.ID {
				t.Errorf("attempt record key %q, want the endpoint id", r.Key)
			}
			// The timed-out request may have been announced as in
			// flight (it ran InFlightAfter): not an attempt.
			if a.Outcome != deliverer.OutcomeDelivering {
				got = append(got, a)
			}
		}
		return len(got) >= 2
	})
	if len(got) != 2 {
		t.Fatalf("%d attempt records, want 2: %+v", len(got), got)
	}
	first, second := got[0], got[1]
	if first.Attempt != 1 || first.Outcome != "failed" || first.Status != 0 || !strings.Contains(first.Error, "timed out") ||
		first.LatencyMS < 900 || first.LatencyMS > 1900 {
		t.Errorf("first attempt %+v: want a timeout after about the endpoint's 1s", first)
	}
	if second.Attempt != 2 || second.Outcome != "delivered" || second.Status != 200 || second.Error != "" {
		t.Errorf("second attempt %+v: want delivered", second)
	}
	for _, a := range got {
		if a.EndpointID != ep.ID || a.EventID != eventID(0, 1) || a.EventType != "agent.created" || a.Tenant != tenant || a.At.IsZero() {
			t.Errorf("attempt %+v: want endpoint, event, type, tenant and time", a)
		}
		if a.Trigger != "scheduled" || a.RequestHeaders["Webhook-Id"] != eventID(0, 1) || a.RequestHeaders["Webhook-Signature"] != sender.Redacted {
			t.Errorf("attempt %+v: want trigger scheduled and the request headers, signature redacted", a)
		}
	}
	if first.ErrorClass != sender.ClassTimeout || second.ErrorClass != "" {
		t.Errorf("error classes %q, %q, want %q, none", first.ErrorClass, second.ErrorClass, sender.ClassTimeout)
	}
}

// TestRateLimit holds an endpoint to its rate limit (a token bucket with a
// burst of one second's worth), in order, while another endpoint of the
// same partition is not held up by it.
func TestRateLimit(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 1)
	limited := newReceiver(t, nil)
	ep, err := e.store.Create(ctxFor(t, 30*time.Second), tenant, subscription.EndpointInput{
		URL: limited.srv.URL, Events: []string{"*"}, RateLimit: 10,
	})
	if err != nil {
		t.Fatal(err)
	}
	limited.setSecret(ep)
	other, otherEp := e.receiverEndpoint(t, "", nil)
	e.start(t, runOpts{})
	start := time.Now()
	e.deliver(t, ep, 0, 1, 30)
	e.deliver(t, otherEp, 1, 1, 30)
	testenv.Eventually(t, 20*time.Second, "the other endpoint's 30", func() bool { return other.delivered() == 30 })
	if n := limited.delivered(); n >= 30 {
		t.Errorf("the limited endpoint had all 30 by the time the other did: not limited")
	}
	testenv.Eventually(t, 20*time.Second, "30 limited deliveries", func() bool { return limited.delivered() == 30 })
	// 10 at once, then 10 a second: the 30th no sooner than 2s in.
	if took := time.Since(start); took < 1800*time.Millisecond {
		t.Errorf("30 deliveries at 10/s took %s, want at least about 2s", took)
	}
	all, ok := limited.receipts()
	if !slices.Equal(all, ok) || checkOrder(t, "limited", ok, 30) != 0 {
		t.Errorf("limited endpoint got %v", all)
	}
}
