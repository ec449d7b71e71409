package deliverylog

import (
	"context"
	"strconv"
	"time"
)

// FailingDelivery is a delivery that ended dead or is still failing.
type FailingDelivery struct {
	EventID string
	// Source is the event's record in the events topic: its bytes, from
	// which the delivery is built again.
	Source Location
	Delivery
}

// MaxFailing bounds what one Failing call returns.
const MaxFailing = 100000

// Failing returns the deliveries to the tenant's endpoint that ended dead
// (and were not delivered since) or are still failing, among the events it
// was attempted in [since, until) (until zero: no end), in the order they
// were first attempted: the order of the endpoint's stream, which is the
// order the deliverer sent them in. Deliveries whose event's record the
// log does not know cannot be sent again and are left out.
func (ix *Index) Failing(ctx context.Context, tenant, endpointID string, since, until time.Time) ([]FailingDelivery, error) {
	lo, hi := strconv.FormatInt(max(since.UnixMilli(), 0), 10), "+"
	if !until.IsZero() {
		hi = "(" + strconv.FormatInt(max(until.UnixMilli(), 0), 10)
	}
	seen := map[string]bool{}
	var events []string
	// The newest attempt of each event to the endpoint: a delivered one
	// means it was sent again since (by a resend or an earlier recover),
	// whatever its attempt number.
	latest := map[string]Entry{}
	key := endpointKey(tenant, endpointID)
	for {
		es, err := ix.rangeStream(ctx, tenant, endpointID, key, lo, hi, false, scanBatch)
		if err != nil {
			return nil, err
		}
		for _, e := range es {
			if e.ID == "" {
				continue
			}
			if !seen[e.EventID] {
				seen[e.EventID] = true
				events = append(events, e.EventID)
			}
			if l, ok := latest[e.EventID]; !ok || !e.At.Before(l.At) {
				latest[e.EventID] = e.Entry
			}
		}
		if len(es) < scanBatch || len(events) > MaxFailing {
			break
		}
		lo = "(" + es[len(es)-1].pos
	}
	var out []FailingDelivery
	for _, id := range events {
		ev, err := ix.Event(ctx, tenant, id)
		if err != nil || ev.Source.Topic == "" {
			continue // expired since, or its match not indexed
		}
		d, ok := ev.Delivery(endpointID)
		again := latest[id].Outcome == "delivered" || d.LastStatusCode >= 200 && d.LastStatusCode < 300
		if ok && (d.Status == StatusDead && !again || d.Status != StatusDead && d.failing()) {
			out = append(out, FailingDelivery{EventID: id, Source: ev.Source, Delivery: d})
		}
	}
	return out, nil
}
