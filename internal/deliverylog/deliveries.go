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
	"github.com/segmentio/encoding/json"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hookstream/hookstream/deliverer"
	"github.com/hookstream/hookstream/internal/record"
)

// Delivery statuses.
const (
	StatusPending   = "pending"
	StatusRetrying  = "retrying"
	StatusDelivered = "delivered"
	StatusDead      = "dead"
	StatusCanceled  = "canceled"
)

// Event is what the log knows of one event: each endpoint it matched, with
// where the delivery record (the event's bytes) is in Kafka.
type Event struct {
	ID         string
	Type       string
	Status     string // pending, delivered, failing, dead
	Deliveries []Delivery
}

// Delivery is one event bound for one endpoint.
type Delivery struct {
	EndpointID     string
	Status         string
	Attempts       int
	LastStatusCode int
	LastAttemptAt  time.Time // zero: not tried yet
	DeadReason     string
	// Topic, Partition and Offset locate the delivery record fanout wrote:
	// the event's bytes, as delivered, to read back or resend.
	Topic     string
	Partition int32
	Offset    int64
}

func eventDeliveriesKey(tenant, event string) string { return tag(tenant) + "evd:" + event }

// lastAttempt is the attempt summary kept per delivery.
type lastAttempt struct {
	Attempt int       `json:"n"`
	Status  int       `json:"s"`
	Outcome string    `json:"o"`
	At      time.Time `json:"t"`
}

func (ix *Index) addDelivery(ctx context.Context, p redis.Pipeliner, r *kgo.Record) {
	d, err := record.Parse(r)
	if err != nil || d.Tenant == "" {
		return
	}
	if !r.Timestamp.Add(ix.retention).After(ix.now()) {
		return
	}
	k := eventDeliveriesKey(d.Tenant, d.EventID)
	// The first record wins: fanout's, not a later resend of the same bytes.
	p.HSetNX(ctx, k, "loc:"+d.EndpointID, fmt.Sprintf("%s/%d/%d", r.Topic, r.Partition, r.Offset))
	p.HSetNX(ctx, k, "type", d.EventType)
	p.PExpireAt(ctx, k, r.Timestamp.Add(ix.retention))
}

func (ix *Index) addDead(ctx context.Context, p redis.Pipeliner, r *kgo.Record) {
	tenant, ep, ev := record.Header(r, record.HeaderTenant), record.Header(r, record.HeaderEndpoint), record.Header(r, record.HeaderEventID)
	if len(tenant) == 0 || len(ep) == 0 || len(ev) == 0 || !r.Timestamp.Add(ix.retention).After(ix.now()) {
		return
	}
	k := eventDeliveriesKey(string(tenant), string(ev))
	p.HSet(ctx, k, "dead:"+string(ep), string(record.Header(r, record.HeaderReason)))
	p.PExpireAt(ctx, k, r.Timestamp.Add(ix.retention))
}

// addLast keeps a's summary as its delivery's latest attempt.
func (ix *Index) addLast(ctx context.Context, p redis.Pipeliner, a deliverer.Attempt, expires time.Time) {
	v, err := json.Marshal(lastAttempt{Attempt: a.Attempt, Status: a.Status, Outcome: a.Outcome, At: a.At})
	if err != nil {
		return
	}
	k := eventDeliveriesKey(a.Tenant, a.EventID)
	p.HSet(ctx, k, "last:"+a.EndpointID, v)
	if a.EventType != "" {
		p.HSetNX(ctx, k, "type", a.EventType)
	}
	p.PExpireAt(ctx, k, expires)
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
	ev := Event{ID: id, Type: h["type"]}
	byEP := map[string]*Delivery{}
	get := func(ep string) *Delivery {
		if byEP[ep] == nil {
			byEP[ep] = &Delivery{EndpointID: ep, Status: StatusPending}
		}
		return byEP[ep]
	}
	for f, v := range h {
		kind, ep, ok := strings.Cut(f, ":")
		if !ok {
			continue
		}
		d := get(ep)
		switch kind {
		case "loc":
			parts := strings.Split(v, "/")
			if len(parts) >= 3 {
				d.Topic = strings.Join(parts[:len(parts)-2], "/")
				pn, _ := strconv.ParseInt(parts[len(parts)-2], 10, 32)
				d.Partition = int32(pn)
				d.Offset, _ = strconv.ParseInt(parts[len(parts)-1], 10, 64)
			}
		case "dead":
			d.DeadReason = v
		case "last":
			var l lastAttempt
			if json.Unmarshal([]byte(v), &l) == nil {
				d.Attempts, d.LastStatusCode, d.LastAttemptAt = l.Attempt, l.Status, l.At
				switch l.Outcome {
				case "delivered":
					d.Status = StatusDelivered
				case "deleted":
					d.Status = StatusCanceled
				default:
					d.Status = StatusRetrying
				}
			}
		}
	}
	counts := map[string]int{}
	for _, d := range byEP {
		if _, dead := h["dead:"+d.EndpointID]; dead {
			d.Status = StatusDead
		}
		counts[d.Status]++
		ev.Deliveries = append(ev.Deliveries, *d)
	}
	sort.Slice(ev.Deliveries, func(i, j int) bool { return ev.Deliveries[i].EndpointID < ev.Deliveries[j].EndpointID })
	switch n := len(ev.Deliveries); {
	case counts[StatusDead] > 0:
		ev.Status = StatusDead
	case counts[StatusRetrying] > 0:
		ev.Status = "failing"
	case counts[StatusDelivered]+counts[StatusCanceled] == n:
		ev.Status = StatusDelivered
	default:
		ev.Status = StatusPending
	}
	return ev, nil
}
