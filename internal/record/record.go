// Package record defines the Kafka records that Hookstream's roles hand to
// each other: delivery records (fanout -> deliverer, deliverer -> retries)
// and dead letters. The record value is always the canonical envelope bytes,
// untouched, so a delivery POSTs exactly what the producer published; all
// routing travels in headers.
package record

import (
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Header keys. Producers set HeaderTenant on events; the rest are Hookstream's.
const (
	HeaderTenant    = "hookstream-tenant"
	HeaderEndpoint  = "hookstream-endpoint"
	HeaderEventID   = "hookstream-event-id"
	HeaderEventType = "hookstream-event-type"
	HeaderAttempt   = "hookstream-attempt"    // attempts already made, decimal
	HeaderNotBefore = "hookstream-not-before" // unix milliseconds; absent = now
	HeaderFirstTry  = "hookstream-first-attempt"
	HeaderReason    = "hookstream-reason" // dead letters: why
	HeaderSource    = "hookstream-source" // dead letters: topic/partition/offset
	// HeaderTrigger says why a delivery record was written (resend,
	// recover, replay, test); absent means TriggerScheduled.
	HeaderTrigger   = "hookstream-trigger"
	HeaderTrace     = "traceparent"
	HeaderTraceMeta = "tracestate"
)

// TriggerScheduled is the trigger of a delivery fanout wrote.
const TriggerScheduled = "scheduled"

// ErrMalformed is wrapped by Parse when a record lacks a required header or
// has an unreadable one.
var ErrMalformed = errors.New("record: malformed delivery record")

// Delivery is one event bound for one endpoint.
type Delivery struct {
	EndpointID string
	Tenant     string
	EventID    string
	EventType  string
	Body       []byte    // canonical envelope, sent as the POST body
	Attempt    int       // attempts already made
	NotBefore  time.Time // zero: due now
	FirstTry   time.Time // zero: not tried yet; used for "failing since"
	Trigger    string    // "" reads as TriggerScheduled
	// Trace carries traceparent/tracestate so the deliverer continues the
	// producer's trace.
	Trace []kgo.RecordHeader
}

// Record encodes d for topic, keyed by endpoint id so every record of one
// endpoint lands in one partition, in order.
func (d *Delivery) Record(topic string) *kgo.Record {
	h := make([]kgo.RecordHeader, 0, 8+len(d.Trace))
	h = append(h,
		kgo.RecordHeader{Key: HeaderEndpoint, Value: []byte(d.EndpointID)},
		kgo.RecordHeader{Key: HeaderTenant, Value: []byte(d.Tenant)},
		kgo.RecordHeader{Key: HeaderEventID, Value: []byte(d.EventID)},
		kgo.RecordHeader{Key: HeaderEventType, Value: []byte(d.EventType)},
	)
	if d.Attempt > 0 {
		h = append(h, kgo.RecordHeader{Key: HeaderAttempt, Value: strconv.AppendInt(nil, int64(d.Attempt), 10)})
	}
	if !d.NotBefore.IsZero() {
		h = append(h, kgo.RecordHeader{Key: HeaderNotBefore, Value: strconv.AppendInt(nil, d.NotBefore.UnixMilli(), 10)})
	}
	if !d.FirstTry.IsZero() {
		h = append(h, kgo.RecordHeader{Key: HeaderFirstTry, Value: strconv.AppendInt(nil, d.FirstTry.UnixMilli(), 10)})
	}
	if d.Trigger != "" && d.Trigger != TriggerScheduled {
		h = append(h, kgo.RecordHeader{Key: HeaderTrigger, Value: []byte(d.Trigger)})
	}
	h = append(h, d.Trace...)
	return &kgo.Record{Topic: topic, Key: []byte(d.EndpointID), Value: d.Body, Headers: h}
}

// Parse decodes a delivery record. Body aliases r.Value.
func Parse(r *kgo.Record) (Delivery, error) {
	var d Delivery
	d.Body = r.Value
	for _, h := range r.Headers {
		switch h.Key {
		case HeaderEndpoint:
			d.EndpointID = string(h.Value)
		case HeaderTenant:
			d.Tenant = string(h.Value)
		case HeaderEventID:
			d.EventID = string(h.Value)
		case HeaderEventType:
			d.EventType = string(h.Value)
		case HeaderAttempt:
			n, err := strconv.Atoi(string(h.Value))
			if err != nil || n < 0 {
				return d, fmt.Errorf("%w: header %s=%q", ErrMalformed, h.Key, h.Value)
			}
			d.Attempt = n
		case HeaderNotBefore, HeaderFirstTry:
			ms, err := strconv.ParseInt(string(h.Value), 10, 64)
			if err != nil {
				return d, fmt.Errorf("%w: header %s=%q", ErrMalformed, h.Key, h.Value)
			}
			if h.Key == HeaderNotBefore {
				d.NotBefore = time.UnixMilli(ms)
			} else {
				d.FirstTry = time.UnixMilli(ms)
			}
		case HeaderTrigger:
			d.Trigger = string(h.Value)
		case HeaderTrace, HeaderTraceMeta:
			d.Trace = append(d.Trace, h)
		}
	}
	switch {
	case d.EndpointID == "":
		return d, fmt.Errorf("%w: no %s header", ErrMalformed, HeaderEndpoint)
	case d.EventID == "":
		return d, fmt.Errorf("%w: no %s header", ErrMalformed, HeaderEventID)
	case len(d.Body) == 0:
		return d, fmt.Errorf("%w: empty value", ErrMalformed)
	}
	return d, nil
}

// Header returns the value of the first header named key, or nil.
func Header(r *kgo.Record, key string) []byte {
	for _, h := range r.Headers {
		if h.Key == key {
			return h.Value
		}
	}
	return nil
}

// Dead builds the dead letter for r: same key, value and headers, plus the
// reason and where it came from, so it can be inspected and redriven.
func Dead(r *kgo.Record, deadTopic, reason string) *kgo.Record {
	h := make([]kgo.RecordHeader, 0, len(r.Headers)+2)
	for _, x := range r.Headers {
		if x.Key != HeaderReason && x.Key != HeaderSource {
			h = append(h, x)
		}
	}
	h = append(h,
		kgo.RecordHeader{Key: HeaderReason, Value: []byte(reason)},
		kgo.RecordHeader{Key: HeaderSource, Value: fmt.Appendf(nil, "%s/%d/%d", r.Topic, r.Partition, r.Offset)},
	)
	return &kgo.Record{Topic: deadTopic, Key: r.Key, Value: r.Value, Headers: h}
}
