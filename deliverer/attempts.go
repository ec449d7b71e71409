package deliverer

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"time"

	"github.com/segmentio/encoding/json"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hookstream/hookstream/internal/record"
	"github.com/hookstream/hookstream/sender"
	"github.com/hookstream/hookstream/subscription"
)

// Attempt is one record of the attempts topic (JSON, keyed by endpoint id):
// the audit log of every delivery attempt.
type Attempt struct {
	EndpointID   string `json:"endpoint_id"`
	EventID      string `json:"event_id"`
	EventType    string `json:"event_type"`
	Tenant       string `json:"tenant"`
	Attempt      int    `json:"attempt"`
	Status       int    `json:"status"`
	LatencyMS    int64  `json:"latency_ms"`
	Error        string `json:"error,omitempty"`
	ResponseBody string `json:"response_body,omitempty"` // first MaxLoggedBody bytes
	// Outcome is delivered, failed, gone, refused or deleted; or
	// OutcomeDelivering for a request still in flight (see logInFlight).
	Outcome string    `json:"outcome"`
	At      time.Time `json:"at"`
	// ErrorClass is sender.Class of the attempt: what an operator filters on.
	ErrorClass        string            `json:"error_class,omitempty"`
	Trigger           string            `json:"trigger"` // why the delivery was made: scheduled, resend, recover, replay, test
	ResponseTruncated bool              `json:"response_truncated,omitempty"`
	RequestHeaders    map[string]string `json:"request_headers,omitempty"` // signatures redacted
}

// MaxLoggedBody caps Attempt.ResponseBody.
const MaxLoggedBody = 1 << 10

// OutcomeDelivering is the outcome of an attempts record that says a
// request has been in flight for InFlightAfter: the attempt is under way,
// and its own record follows when it ends. It is not an attempt: it
// carries no status, and the delivery log shows it only as the delivery's
// status, delivering.
const OutcomeDelivering = "delivering"

// InFlightAfter is how long a request runs before it is announced as in
// flight (within half of it more: the worker looks every InFlightAfter/2).
// Most answer well within it, and cost no record.
const InFlightAfter = time.Second

// logInFlight produces the record that attempt n of del, begun at
// started, is still in flight.
func (d *Deliverer) logInFlight(ctx context.Context, del record.Delivery, n int, started time.Time) {
	a := Attempt{
		EndpointID: del.EndpointID, EventID: del.EventID, EventType: del.EventType, Tenant: del.Tenant,
		Attempt: n, Outcome: OutcomeDelivering, At: started.UTC(), Trigger: cmp.Or(del.Trigger, record.TriggerScheduled),
	}
	d.produceAttempt(ctx, del, a)
}

// logAttempt produces an Attempt without waiting: the log is for people,
// and no decision depends on it.
func (d *Deliverer) logAttempt(ctx context.Context, del record.Delivery, n int, outcome string, res sender.Result) {
	a := Attempt{
		EndpointID: del.EndpointID,
		EventID:    del.EventID,
		EventType:  del.EventType,
		Tenant:     del.Tenant,
		Attempt:    n,
		Status:     res.Status,
		LatencyMS:  res.Latency.Milliseconds(),
		Outcome:    outcome,
		At:         time.Now().UTC(),
		ErrorClass: sender.Class(res),
		Trigger:    cmp.Or(del.Trigger, record.TriggerScheduled),

		ResponseTruncated: res.BodyTruncated || len(res.Body) > MaxLoggedBody,
		RequestHeaders:    res.Headers,
	}
	if outcome == "deleted" {
		a.ErrorClass = "endpoint_deleted"
	}
	if res.Err != nil {
		a.Error = res.Err.Error()
	}
	if b := res.Body; len(b) > 0 {
		a.ResponseBody = string(b[:min(len(b), MaxLoggedBody)])
	}
	d.produceAttempt(ctx, del, a)
}

func (d *Deliverer) produceAttempt(ctx context.Context, del record.Delivery, a Attempt) {
	v, err := json.Marshal(a)
	if err != nil {
		return
	}
	// The delivery's trace context goes along, so the record's publish span
	// joins the event's trace instead of starting one of its own. Cloned:
	// a tracing hook rewrites the record's headers.
	r := &kgo.Record{Topic: d.cfg.topics.Attempts, Key: []byte(del.EndpointID), Value: v, Headers: slices.Clone(del.Trace)}
	d.client.Produce(ctx, r, func(_ *kgo.Record, err error) {
		if err != nil && !errors.Is(err, context.Canceled) {
			d.cfg.log.Warn("deliverer: attempts log", "endpoint", del.EndpointID, "err", err)
		}
	})
}

// disabledEvent is the data of endpoint.disabled (schemas/endpoint.disabled.json).
type disabledEvent struct {
	EndpointID   string `json:"endpoint_id"`
	Tenant       string `json:"tenant"`
	URL          string `json:"url"`
	Reason       string `json:"reason"`
	FailingSince string `json:"failing_since"`
	DisabledAt   string `json:"disabled_at"`
}

// EventDisabled is the type of the event published when an endpoint is
// disabled.
const EventDisabled = "endpoint.disabled"

// disableEndpoint disables ep and, when that worked, publishes
// endpoint.disabled. Failures are logged: the record is dead-lettered
// either way, and a still-enabled endpoint fails again and is disabled then.
func (d *Deliverer) disableEndpoint(ctx context.Context, ep *subscription.Endpoint, reason string, since, now time.Time) {
	if err := d.eps.Disable(ctx, ep.ID, reason); err != nil {
		d.cfg.log.Error("deliverer: disable endpoint", "endpoint", ep.ID, "err", err)
		return
	}
	d.cfg.log.Warn("deliverer: endpoint disabled", "endpoint", ep.ID, "tenant", ep.Tenant, "reason", reason)
	if d.cfg.publisher == nil {
		return
	}
	data, err := json.Marshal(disabledEvent{
		EndpointID:   ep.ID,
		Tenant:       ep.Tenant,
		URL:          ep.URL,
		Reason:       reason,
		FailingSince: since.UTC().Format(time.RFC3339),
		DisabledAt:   now.UTC().Format(time.RFC3339),
	})
	if err != nil {
		return
	}
	if _, err := d.cfg.publisher.Publish(ctx, ep.Tenant, EventDisabled, data); err != nil {
		d.cfg.log.Error("deliverer: publish endpoint.disabled", "endpoint", ep.ID, "err", err)
	}
}
