package deliverylog

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hookstream/hookstream/deliverer"
	"github.com/hookstream/hookstream/internal/record"
)

// Delivery statuses.
const (
	StatusPending = "pending"
	// StatusDelivering: a request has been in flight for
	// deliverer.InFlightAfter and has not ended yet.
	StatusDelivering = "delivering"
	StatusRetrying   = "retrying"
	StatusParked     = "parked"
	StatusDelivered  = "delivered"
	StatusDead       = "dead"
	StatusCanceled   = "canceled"
)

// Event statuses beyond the delivery ones: what an event's deliveries
// add up to.
const (
	EventNoEndpoints = "no_endpoints"
	EventFailing     = "failing"
)

// Location is where a record is in Kafka.
type Location struct {
	Topic     string
	Partition int32
	Offset    int64
}

func (l Location) String() string { return fmt.Sprintf("%s/%d/%d", l.Topic, l.Partition, l.Offset) }

func parseLocation(s string) (Location, bool) {
	i := strings.LastIndexByte(s, '/')
	if i < 0 {
		return Location{}, false
	}
	j := strings.LastIndexByte(s[:i], '/')
	if j < 0 {
		return Location{}, false
	}
	p, err1 := strconv.ParseInt(s[j+1:i], 10, 32)
	o, err2 := strconv.ParseInt(s[i+1:], 10, 64)
	if err1 != nil || err2 != nil {
		return Location{}, false
	}
	return Location{Topic: s[:j], Partition: int32(p), Offset: o}, true
}

// Event is what the log knows of one event: each endpoint it matched, and
// where the event's bytes are in Kafka.
type Event struct {
	ID     string
	Type   string
	Status string // no_endpoints, pending, delivered, failing, dead
	// At is when the event was published (its record's timestamp); zero
	// when fanout's match record is not indexed (yet).
	At time.Time
	// Source locates the event in the events topic: its bytes, to read
	// back. Zero Topic when the match record is not indexed (yet).
	Source     Location
	Deliveries []Delivery
}

// Delivery is one event bound for one endpoint.
type Delivery struct {
	EndpointID     string
	Status         string
	Attempts       int
	LastStatusCode int
	LastAttemptAt  time.Time // zero: not tried yet
	// NextAttemptAt is when the next attempt is due by the retry schedule
	// (parked: as the deliverer recorded it); zero when none is.
	NextAttemptAt time.Time
	DeadReason    string
	// CancelReason says why a canceled delivery was not made.
	CancelReason string
}

// Reasons of canceled deliveries.
const (
	ReasonDisabled = "endpoint disabled when the event arrived"
	ReasonDeleted  = "endpoint deleted"
)

func eventDeliveriesKey(tenant, event string) string { return tag(tenant) + "evd:" + event }
func eventsKey(tenant string) string                 { return tag(tenant) + "evs" }
func endpointEventsKey(tenant, ep string) string     { return tag(tenant) + "epd:" + ep }

// eventMember orders events by time, then events-topic coordinates; the
// event id follows, so a member names its event.
func eventMember(m record.Match) string { return member(m.At, m.Partition, m.Offset) + m.EventID }

// lastAttempt is the attempt summary kept per delivery.
type lastAttempt struct {
	Attempt int
	Status  int
	Outcome string
	At      time.Time // to the millisecond
	Trigger string    // "" for scheduled
}

// addMatch indexes fanout's record of an event: the event in the tenant's
// list and in each of its endpoints' lists.
//
// The lists' trims and expiries wait in pl for the end of the poll: one
// trim per list per poll instead of one per event, as the tenant's list
// and busy endpoints' lists take most events.
func (pl *poll) addMatch(ctx context.Context, p redis.Pipeliner, r *kgo.Record) {
	ix := pl.ix
	m, err := record.ParseMatch(r)
	if err != nil {
		return
	}
	if m.At.IsZero() {
		m.At = r.Timestamp
	}
	expires := m.At.Add(ix.retention)
	if !expires.After(ix.now()) {
		return
	}
	em := eventMember(m)
	k := eventDeliveriesKey(m.Tenant, m.EventID)
	fields := []any{"type", m.EventType, "at", strconv.FormatInt(m.At.UnixMilli(), 10),
		"src", Location{m.Topic, m.Partition, m.Offset}.String(), "m", em}
	for _, ep := range m.Endpoints {
		fields = append(fields, pl.keysOf(m.Tenant, ep).matched, "1")
	}
	for _, ep := range m.Disabled {
		fields = append(fields, "dis:"+ep, "1")
	}
	p.HSet(ctx, k, fields...)
	pl.done.typeWritten(k)
	later(pl.expires, k, expires)
	list := func(key string) {
		p.ZAdd(ctx, key, redis.Z{Member: em})
		later(pl.trims, key, expires)
	}
	list(eventsKey(m.Tenant))
	for _, ep := range m.Endpoints {
		list(pl.keysOf(m.Tenant, ep).events)
	}
	for _, ep := range m.Disabled {
		list(pl.keysOf(m.Tenant, ep).events)
	}
}

// addParked notes a delivery record the deliverer parked in the retries
// topic: attempts made so far and when the next is due.
func (pl *poll) addParked(ctx context.Context, p redis.Pipeliner, r *kgo.Record) {
	ix := pl.ix
	if record.Header(r, deliverer.HeaderMarker) != nil {
		return
	}
	d, err := record.Parse(r)
	if err != nil || d.Tenant == "" || d.NotBefore.IsZero() || !r.Timestamp.Add(ix.retention).After(ix.now()) {
		return
	}
	k := eventDeliveriesKey(d.Tenant, d.EventID)
	p.HSet(ctx, k, "park:"+d.EndpointID, fmt.Sprintf("%d/%d", d.Attempt, d.NotBefore.UnixMilli()))
	later(pl.expires, k, r.Timestamp.Add(ix.retention))
}

// lastValue is a's summary as its delivery's latest attempt.
func lastValue(a *deliverer.Attempt) lastAttempt {
	l := lastAttempt{Attempt: a.Attempt, Status: a.Status, Outcome: a.Outcome, At: a.At}
	if a.Trigger != record.TriggerScheduled {
		l.Trigger = a.Trigger
	}
	return l
}

// next is when the delivery's next attempt is due by the retry schedule
// after l; zero when none is.
func (ix *Index) next(l lastAttempt) time.Time {
	if l.Outcome != "delivered" && l.Outcome != "deleted" && l.Attempt >= 1 && l.Attempt < len(ix.schedule) {
		return l.At.Add(ix.schedule[l.Attempt])
	}
	return time.Time{}
}

// Event returns what the log knows of the tenant's event: the endpoints it
// matched, each delivery's status, and where its bytes are in Kafka.
// ErrNotFound when the event is not the tenant's or not in the window.
func (ix *Index) Event(ctx context.Context, tenant, id string) (Event, error) {
	h, err := ix.rdb.HGetAll(ctx, eventDeliveriesKey(tenant, id)).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return Event{}, fmt.Errorf("deliverylog: event: %w", err)
	}
	if len(h) == 0 {
		return Event{}, ErrNotFound
	}
	return ix.eventOf(id, h), nil
}

// deadSince tells whether d's delivery is dead: it went dead, and no
// attempt of a recovery (resend, recover, replay) came after. resentAt is
// the time of its latest attempt if that one was not scheduled.
func deadSince(h map[string]string, d *Delivery, resentAt time.Time) bool {
	if !hasField(h, "dead:"+d.EndpointID) {
		return false
	}
	ms, err := strconv.ParseInt(h["deadat:"+d.EndpointID], 10, 64)
	return err != nil || !resentAt.After(time.UnixMilli(ms))
}

// eventOf builds an event from its hash.
func (ix *Index) eventOf(id string, h map[string]string) Event {
	ev := Event{ID: id, Type: h["type"]}
	if ms, err := strconv.ParseInt(h["at"], 10, 64); err == nil {
		ev.At = time.UnixMilli(ms).UTC()
	}
	ev.Source, _ = parseLocation(h["src"])
	byEP := map[string]*Delivery{}
	get := func(ep string) *Delivery {
		if byEP[ep] == nil {
			byEP[ep] = &Delivery{EndpointID: ep, Status: StatusPending}
		}
		return byEP[ep]
	}
	var parked map[string]string
	flying := map[string]int{}
	resentAt := map[string]time.Time{}
	for f, v := range h {
		kind, ep, ok := strings.Cut(f, ":")
		if !ok {
			continue
		}
		d := get(ep)
		switch kind {
		case "dead":
			d.DeadReason = v
		case "fly":
			flying[ep], _ = strconv.Atoi(v)
		case "park":
			if parked == nil {
				parked = map[string]string{}
			}
			parked[ep] = v
		case "a":
			if l, _, ok := parseDelivery(ep, v); ok {
				d.Attempts, d.LastStatusCode, d.LastAttemptAt, d.NextAttemptAt = l.Attempt, l.Status, l.At, ix.next(l)
				if l.Trigger != "" {
					resentAt[ep] = l.At
				}
				switch l.Outcome {
				case "delivered":
					d.Status = StatusDelivered
				case "deleted":
					d.Status, d.CancelReason = StatusCanceled, ReasonDeleted
				default:
					d.Status = StatusRetrying
				}
			}
		}
	}
	counts := map[string]int{}
	for _, d := range byEP {
		switch {
		case deadSince(h, d, resentAt[d.EndpointID]):
			d.Status, d.NextAttemptAt = StatusDead, time.Time{}
		case hasField(h, "dis:"+d.EndpointID):
			d.Status, d.CancelReason = StatusCanceled, ReasonDisabled
		case d.Status == StatusRetrying || d.Status == StatusPending:
			// Parked with no attempt since: waiting in the retries topic.
			// An attempt in flight past both: delivering.
			made := d.Attempts
			if n, ms, ok := strings.Cut(parked[d.EndpointID], "/"); ok {
				at, _ := strconv.Atoi(n)
				due, err := strconv.ParseInt(ms, 10, 64)
				if err == nil && at >= d.Attempts {
					d.Status, d.NextAttemptAt = StatusParked, time.UnixMilli(due).UTC()
					made = at
				}
			}
			if flying[d.EndpointID] > made {
				d.Status, d.NextAttemptAt = StatusDelivering, time.Time{}
			}
		}
		if d.Status == StatusDelivering && d.Attempts > 0 {
			counts[StatusRetrying]++ // a retry under way: the event is still failing
		} else {
			counts[d.Status]++
		}
		ev.Deliveries = append(ev.Deliveries, *d)
	}
	sort.Slice(ev.Deliveries, func(i, j int) bool { return ev.Deliveries[i].EndpointID < ev.Deliveries[j].EndpointID })
	enabled := len(ev.Deliveries) - counts[StatusCanceled]
	for _, d := range ev.Deliveries {
		if d.CancelReason == ReasonDeleted {
			enabled++
		}
	}
	switch {
	case counts[StatusDead] > 0:
		ev.Status = StatusDead
	case counts[StatusRetrying]+counts[StatusParked] > 0:
		ev.Status = EventFailing
	case h["src"] != "" && enabled == 0:
		ev.Status = EventNoEndpoints
	case counts[StatusPending]+counts[StatusDelivering] > 0:
		ev.Status = StatusPending
	default:
		ev.Status = StatusDelivered
	}
	return ev
}

func hasField(h map[string]string, f string) bool {
	_, ok := h[f]
	return ok
}

// failing tells whether d ended dead or is still failing: retrying,
// parked, or delivering a retry.
func (d *Delivery) failing() bool {
	switch d.Status {
	case StatusDead, StatusRetrying, StatusParked:
		return true
	case StatusDelivering:
		return d.Attempts > 0
	}
	return false
}

// Delivery returns the event's delivery to endpointID, if it has one.
func (ev *Event) Delivery(endpointID string) (Delivery, bool) {
	for _, d := range ev.Deliveries {
		if d.EndpointID == endpointID {
			return d, true
		}
	}
	return Delivery{}, false
}
