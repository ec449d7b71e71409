package deliverer

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/segmentio/encoding/json"

	"github.com/hookstream/hookstream/internal/record"
	"github.com/hookstream/hookstream/producer"
	"github.com/hookstream/hookstream/schemas"
	"github.com/hookstream/hookstream/subscription"
)

// Operational event types the deliverer publishes besides endpoint.disabled.
const (
	EventExhausted = "attempt.exhausted"
	EventRecovered = "endpoint.recovered"
)

// DefaultRecoveredAfter is how long an endpoint must have been failing for
// its next 2xx to publish endpoint.recovered: a single retried blip is not
// news.
const DefaultRecoveredAfter = time.Minute

// WithRecoveredAfter sets DefaultRecoveredAfter's value.
func WithRecoveredAfter(d time.Duration) Option { return func(c *config) { c.recoveredAfter = d } }

// exhaustedEvent is the data of attempt.exhausted (schemas/attempt.exhausted.json).
type exhaustedEvent struct {
	EndpointID     string `json:"endpoint_id"`
	Tenant         string `json:"tenant"`
	EventID        string `json:"event_id"`
	EventType      string `json:"event_type"`
	Attempts       int    `json:"attempts"`
	LastStatusCode int    `json:"last_status_code"`
	Reason         string `json:"reason"`
	ExhaustedAt    string `json:"exhausted_at"`
}

// recoveredEvent is the data of endpoint.recovered (schemas/endpoint.recovered.json).
type recoveredEvent struct {
	EndpointID   string `json:"endpoint_id"`
	Tenant       string `json:"tenant"`
	URL          string `json:"url"`
	FailingSince string `json:"failing_since"`
	RecoveredAt  string `json:"recovered_at"`
}

// opEventID derives an operational event's id from what it reports, so
// that reporting it again (a crash before the delivery record's offset was
// committed) is dropped by fanout's dedupe instead of notifying twice.
func opEventID(parts ...any) string {
	h := sha256.Sum256(fmt.Append(nil, parts...))
	return "evt_" + hex.EncodeToString(h[:12])
}

// publishExhausted publishes attempt.exhausted for a delivery whose retry
// schedule ran out (dv, at Kafka partition/offset of its topic). A delivery
// of an operational event publishes nothing: an endpoint failing its own
// attempt.exhausted must not feed itself another one.
func (d *Deliverer) publishExhausted(ctx context.Context, dv record.Delivery, at string, status int, reason string, now time.Time) {
	if d.cfg.publisher == nil || schemas.Operational(dv.EventType) {
		return
	}
	data, err := json.Marshal(exhaustedEvent{
		EndpointID: dv.EndpointID, Tenant: dv.Tenant, EventID: dv.EventID, EventType: dv.EventType,
		Attempts: dv.Attempt, LastStatusCode: status, Reason: reason, ExhaustedAt: now.UTC().Format(time.RFC3339),
	})
	if err != nil {
		return
	}
	d.goroutines.Go(func() {
		id := opEventID(EventExhausted, dv.Tenant, dv.EndpointID, dv.EventID, at)
		if _, err := d.cfg.publisher.Publish(ctx, dv.Tenant, EventExhausted, data, producer.WithID(id)); err != nil {
			d.cfg.log.Error("deliverer: publish attempt.exhausted", "endpoint", dv.EndpointID, "event", dv.EventID, "err", err)
		}
	})
}

// publishRecovered publishes endpoint.recovered when ep answered 2xx after
// failing since since, for at least WithRecoveredAfter.
func (d *Deliverer) publishRecovered(ctx context.Context, ep *subscription.Endpoint, since, now time.Time) {
	if d.cfg.publisher == nil || ep == nil || since.IsZero() || now.Sub(since) < d.cfg.recoveredAfter {
		return
	}
	data, err := json.Marshal(recoveredEvent{
		EndpointID: ep.ID, Tenant: ep.Tenant, URL: ep.URL,
		FailingSince: since.UTC().Format(time.RFC3339), RecoveredAt: now.UTC().Format(time.RFC3339),
	})
	if err != nil {
		return
	}
	d.goroutines.Go(func() {
		id := opEventID(EventRecovered, ep.Tenant, ep.ID, since.UnixMilli())
		if _, err := d.cfg.publisher.Publish(ctx, ep.Tenant, EventRecovered, data, producer.WithID(id)); err != nil {
			d.cfg.log.Error("deliverer: publish endpoint.recovered", "endpoint", ep.ID, "err", err)
		}
	})
}
