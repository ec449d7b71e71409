package deliverylog

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// EventQuery selects events; zero fields match everything.
type EventQuery struct {
	Type     string
	Status   string // an event status (no_endpoints, pending, ...)
	Endpoint string // events that matched this endpoint
	Since    time.Time
	Until    time.Time
	Limit    int    // default 50, at most 250
	Cursor   string // from an EventPage's Next or Prev; "" = newest
}

// EventPage is one page of events, newest first; Next, Prev and the window
// as in Page.
type EventPage struct {
	Data  []Event
	Next  string
	Prev  string
	Since time.Time
	Until time.Time
}

// Events pages the tenant's events, newest first.
func (ix *Index) Events(ctx context.Context, tenant string, q EventQuery) (EventPage, error) {
	key, scope := eventsKey(tenant), "evs"
	if q.Endpoint != "" {
		key, scope = endpointEventsKey(tenant, q.Endpoint), "epd:"+q.Endpoint
	}
	keep := func(ev *Event) bool {
		return (q.Type == "" || ev.Type == q.Type) && (q.Status == "" || ev.Status == q.Status)
	}
	return ix.pageEvents(ctx, tenant, key, scope, q, keep)
}

// DeadDeliveries pages the events whose delivery to the tenant's endpoint
// went dead, newest first; each Event's Deliveries holds that one delivery.
func (ix *Index) DeadDeliveries(ctx context.Context, tenant, endpointID string, q EventQuery) (EventPage, error) {
	keep := func(ev *Event) bool {
		d, ok := ev.Delivery(endpointID)
		if !ok || d.Status != StatusDead || q.Type != "" && ev.Type != q.Type {
			return false
		}
		ev.Deliveries = []Delivery{d}
		return true
	}
	return ix.pageEvents(ctx, tenant, endpointEventsKey(tenant, endpointID), "dead:"+endpointID, q, keep)
}

// EndpointDelivery is one delivery of an endpoint with its event.
type EndpointDelivery struct {
	EventID   string
	EventType string
	At        time.Time // when the event was published
	Source    Location  // the event in the events topic: its bytes
	Delivery
}

// Unfinished returns the deliveries to the tenant's endpoint of events
// published in [since, until) (zero until: now) that ended dead or are
// still failing (retrying or parked), oldest first, with where their
// event's bytes are.
func (ix *Index) Unfinished(ctx context.Context, tenant, endpointID string, since, until time.Time) ([]EndpointDelivery, error) {
	lo, hi := "["+memberTime(since), "+"
	if !until.IsZero() {
		hi = "(" + memberTime(until)
	}
	key := endpointEventsKey(tenant, endpointID)
	var out []EndpointDelivery
	for {
		ms, err := ix.rdb.ZRangeByLex(ctx, key, &redis.ZRangeBy{Min: lo, Max: hi, Count: scanBatch}).Result()
		if err != nil {
			return nil, fmt.Errorf("deliverylog: range: %w", err)
		}
		evs, err := ix.events(ctx, tenant, ms)
		if err != nil {
			return nil, err
		}
		for _, ev := range evs {
			d, ok := ev.Delivery(endpointID)
			if ok && d.failing() {
				out = append(out, EndpointDelivery{EventID: ev.ID, EventType: ev.Type, At: ev.At, Source: ev.Source, Delivery: d})
			}
		}
		if len(ms) < scanBatch {
			return out, nil
		}
		lo = "(" + ms[len(ms)-1]
	}
}

// events loads the events of members; an expired one comes back with an
// empty ID.
func (ix *Index) events(ctx context.Context, tenant string, ms []string) ([]Event, error) {
	cmds := make([]*redis.MapStringStringCmd, len(ms))
	_, err := ix.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, m := range ms {
			cmds[i] = p.HGetAll(ctx, eventDeliveriesKey(tenant, memberEvent(m)))
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("deliverylog: events: %w", err)
	}
	out := make([]Event, len(ms))
	for i, c := range cmds {
		if h := c.Val(); len(h) > 0 {
			out[i] = ix.eventOf(memberEvent(ms[i]), h)
		}
	}
	return out, nil
}

// memberEvent is the event id of an event member.
func memberEvent(m string) string {
	if len(m) < 28 {
		return ""
	}
	return m[28:]
}

// eventBatch is how many events one round trip loads while filtering.
const eventBatch = 100

func (ix *Index) pageEvents(ctx context.Context, tenant, key, scope string, q EventQuery, keep func(*Event) bool) (EventPage, error) {
	b, err := ix.bounds(tenant, scope, q.Limit, q.Since, q.Until, q.Cursor)
	if err != nil {
		return EventPage{}, err
	}
	limit, lo, hi, older := b.limit, b.lo, b.hi, b.older
	pg := EventPage{Since: b.since, Until: b.until}
	var got []Event
	var members []string
	more := false
	batch := int64(min(limit+1, eventBatch))
	for len(got) <= limit {
		ms, err := ix.rangeLex(ctx, key, lo, hi, older, batch)
		if err != nil {
			return EventPage{}, err
		}
		if len(ms) == 0 {
			break
		}
		evs, err := ix.events(ctx, tenant, ms)
		if err != nil {
			return EventPage{}, err
		}
		for i := range evs {
			if len(got) == limit {
				more = true
				break
			}
			if evs[i].ID != "" && keep(&evs[i]) {
				got = append(got, evs[i])
				members = append(members, ms[i])
			}
		}
		if more || int64(len(ms)) < batch {
			break
		}
		batch = min(4*batch, eventBatch)
		if older {
			hi = "(" + ms[len(ms)-1]
		} else {
			lo = "(" + ms[len(ms)-1]
		}
	}
	if !older {
		for i, j := 0, len(got)-1; i < j; i, j = i+1, j-1 {
			got[i], got[j] = got[j], got[i]
			members[i], members[j] = members[j], members[i]
		}
	}
	pg.Data = got
	switch {
	case len(got) > 0:
		pg.Prev = cursor(tenant, scope, false, members[0])
		if more || !older {
			pg.Next = cursor(tenant, scope, true, members[len(members)-1])
		}
	case !older:
		pg.Prev = q.Cursor
	}
	return pg, nil
}
