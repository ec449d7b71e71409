// Package producer is the Go library platform services use to publish events
// to Hookstream: it validates each event against the catalog in schemas/,
// wraps it in the canonical envelope and produces it to <prefix>events,
// returning only once Kafka acknowledged it.
//
// Records follow the documented wire format: key = ordering key (the tenant
// unless WithKey says otherwise), value = envelope JSON, header
// hookstream-tenant, and the W3C trace context of the publishing context in
// traceparent/tracestate.
package producer

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/hookstream/hookstream/envelope"
	"github.com/hookstream/hookstream/internal/record"
	"github.com/hookstream/hookstream/internal/topic"
	"github.com/hookstream/hookstream/schemas"
)

// ErrInvalidTenant is wrapped when the tenant is empty or not 1 to 128
// characters of [A-Za-z0-9_.:-] (it travels in a header and in Redis keys).
var ErrInvalidTenant = errors.New("producer: invalid tenant")

// BatchError names the first event of a batch that failed validation;
// nothing of the batch was produced. Err is what Publish would have returned
// for that event.
type BatchError struct {
	Index int
	Err   error
}

func (e *BatchError) Error() string { return fmt.Sprintf("event %d: %v", e.Index, e.Err) }

func (e *BatchError) Unwrap() error { return e.Err }

type cfg struct {
	prefix     string
	maxSize    int
	partitions topic.Partitions
	meter      metric.MeterProvider
}

// Option configures a Producer.
type Option func(*cfg)

// WithTopicPrefix sets the topic name prefix (default "hookstream."); events
// go to <prefix>events.
func WithTopicPrefix(p string) Option { return func(c *cfg) { c.prefix = p } }

// WithMaxSize caps the encoded envelope (default envelope.DefaultMaxSize,
// 256 KiB). Consumers decode with their own limit, so raise both together.
func WithMaxSize(n int) Option { return func(c *cfg) { c.maxSize = n } }

// WithPartitions sets the partition counts EnsureTopics creates topics with
// (default topic.DefaultPartitions: the broker decides).
func WithPartitions(p topic.Partitions) Option { return func(c *cfg) { c.partitions = p } }

// WithMeterProvider records the hookstream.events.published counter with mp
// (default otel.GetMeterProvider()).
func WithMeterProvider(mp metric.MeterProvider) Option { return func(c *cfg) { c.meter = mp } }

// Producer publishes events. It is safe for concurrent use.
type Producer struct {
	client    *kgo.Client
	catalog   *schemas.Catalog
	topics    topic.Names
	published metric.Int64Counter
	byType    sync.Map // event type -> metric.AddOption, so counting allocates nothing
	cfg
}

// New returns a producer writing through client. The client's producer
// settings (acks, idempotency, timeouts) are the caller's; see ClientOpts.
func New(client *kgo.Client, catalog *schemas.Catalog, opts ...Option) *Producer {
	c := cfg{prefix: topic.DefaultPrefix, maxSize: envelope.DefaultMaxSize, partitions: topic.DefaultPartitions}
	for _, o := range opts {
		o(&c)
	}
	if c.maxSize <= 0 {
		c.maxSize = envelope.DefaultMaxSize
	}
	if c.meter == nil {
		c.meter = otel.GetMeterProvider()
	}
	p := &Producer{client: client, catalog: catalog, topics: topic.New(c.prefix), cfg: c}
	// The only error is an invalid name, and the name is a constant.
	p.published, _ = c.meter.Meter("hookstream/producer").Int64Counter("hookstream.events.published",
		metric.WithUnit("{event}"), metric.WithDescription("Events Kafka acknowledged, by event type."))
	return p
}

// count adds n acknowledged events of eventType. Types are the catalog's
// (validated before producing), so the label set stays small.
func (p *Producer) count(ctx context.Context, eventType string, n int) {
	opt, ok := p.byType.Load(eventType)
	if !ok {
		opt, _ = p.byType.LoadOrStore(eventType, metric.WithAttributes(attribute.String("event_type", eventType)))
	}
	p.published.Add(ctx, int64(n), opt.(metric.AddOption))
}

// ClientOpts are kgo options for a client whose publishes are bounded in
// time, such as the HTTP API's: a record not acknowledged within timeout, or
// before the publishing context ends, is failed even while in flight instead
// of being retried until Kafka returns, and the client re-checks about twice
// a second (metadata min age) rather than every 5 s while Kafka is
// unreachable. Idempotent writes stay on for the client's own retries.
//
// Publish returns only once the client has acknowledged or failed every
// record, and a failed record is never sent again, so an event whose Publish
// failed does not reach the topic later. The exception is inherent: a
// request already on the wire when the timeout hit may have been written.
func ClientOpts(timeout time.Duration) []kgo.Opt {
	return []kgo.Opt{
		kgo.RecordDeliveryTimeout(timeout),
		kgo.AllowIdempotentProduceCancellation(),
		kgo.MetadataMinAge(500 * time.Millisecond),
	}
}

// EnsureTopics creates Hookstream's topics when missing (see topic.Ensure).
func (p *Producer) EnsureTopics(ctx context.Context) error {
	return topic.Ensure(ctx, kadm.NewClient(p.client), p.topics, p.partitions)
}

// Event is one event of a batch.
type Event struct {
	Type string
	Data []byte // the data object, JSON
	// ID is a caller-supplied idempotency id kept as the envelope id
	// (default: a fresh evt_ id).
	ID string
	// Key is the ordering key (default: the tenant).
	Key string
	// Timestamp is the envelope timestamp (default: now).
	Timestamp time.Time
}

// PublishOption configures one Publish.
type PublishOption func(*Event)

// WithID keeps id, a caller-supplied idempotency id, as the envelope id.
func WithID(id string) PublishOption { return func(e *Event) { e.ID = id } }

// WithKey sets the ordering key: events of one key reach each endpoint in
// order (default: the tenant).
func WithKey(key string) PublishOption { return func(e *Event) { e.Key = key } }

// WithTimestamp sets the envelope timestamp (default: now).
func WithTimestamp(t time.Time) PublishOption { return func(e *Event) { e.Timestamp = t } }

// Publish validates one event, produces it and waits for Kafka's
// acknowledgement. It returns the event id. A validation error wraps
// ErrInvalidTenant, schemas.ErrUnknownType or schemas.ErrInvalidJSON, or is a
// *schemas.ValidationError (pointer relative to data) or an
// *envelope.FieldError (bad id, too large); anything else means Kafka did not
// acknowledge the record. The record carries ctx: when ctx ends the client
// fails it at its next attempt (see ClientOpts), and Publish returns once
// the client has acknowledged or failed it.
func (p *Producer) Publish(ctx context.Context, tenant, eventType string, data []byte, opts ...PublishOption) (string, error) {
	ev := Event{Type: eventType, Data: data}
	for _, o := range opts {
		o(&ev)
	}
	r, id, err := p.build(ctx, tenant, &ev)
	if err != nil {
		return "", err
	}
	if err := p.client.ProduceSync(ctx, r).FirstErr(); err != nil {
		return "", fmt.Errorf("producer: produce to %s: %w", p.topics.Events, err)
	}
	p.count(ctx, ev.Type, 1)
	return id, nil
}

// PublishBatch validates every event first and produces nothing unless all
// are valid (the error is then a *BatchError naming the first bad one). It
// returns the ids in order once Kafka acknowledged every record. On a
// produce error some records may have been written: callers that retry
// should pass ids (Event.ID) so the retry is deduplicated.
func (p *Producer) PublishBatch(ctx context.Context, tenant string, events []Event) ([]string, error) {
	recs := make([]*kgo.Record, len(events))
	ids := make([]string, len(events))
	for i := range events {
		r, id, err := p.build(ctx, tenant, &events[i])
		if err != nil {
			return nil, &BatchError{Index: i, Err: err}
		}
		recs[i], ids[i] = r, id
	}
	if len(recs) == 0 {
		return ids, nil
	}
	if err := p.client.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		return nil, fmt.Errorf("producer: produce to %s: %w", p.topics.Events, err)
	}
	for i := range events {
		p.count(ctx, events[i].Type, 1)
	}
	return ids, nil
}

// build validates ev and builds its Kafka record.
func (p *Producer) build(ctx context.Context, tenant string, ev *Event) (*kgo.Record, string, error) {
	if !envelope.ValidID(tenant) { // tenants follow the id alphabet
		return nil, "", fmt.Errorf("%w %q: want 1-128 characters of [A-Za-z0-9_.:-]", ErrInvalidTenant, tenant)
	}
	if ev.ID != "" && !envelope.ValidID(ev.ID) {
		return nil, "", &envelope.FieldError{Pointer: "/id", Err: envelope.ErrInvalidField, Detail: "want 1-128 characters of [A-Za-z0-9_.:-]"}
	}
	// Checked before schema validation, which would parse all of it.
	if len(ev.Data) > p.maxSize {
		return nil, "", tooLarge(len(ev.Data), p.maxSize)
	}
	if err := p.catalog.Validate(ev.Type, ev.Data); err != nil {
		return nil, "", err
	}
	e := envelope.Event{ID: ev.ID, Event: ev.Type, Data: ev.Data}
	if e.ID == "" {
		e.ID = envelope.NewID()
	}
	if ev.Timestamp.IsZero() {
		e.Timestamp = envelope.FormatTime(time.Now())
	} else {
		e.Timestamp = envelope.FormatTime(ev.Timestamp)
	}
	key := ev.Key
	if key == "" {
		key = tenant
	}
	// One buffer holds key, tenant header and value: one allocation instead
	// of three. The full slice expressions keep appends from overlapping.
	n := len(key) + len(tenant) + len(e.ID) + len(e.Event) + len(e.Timestamp) + len(e.Data) + 64
	buf := make([]byte, 0, n)
	buf = append(buf, key...)
	buf = append(buf, tenant...)
	k, t := buf[:len(key):len(key)], buf[len(key):len(buf):len(buf)]
	out, err := e.AppendEncode(buf)
	if err != nil {
		return nil, "", err
	}
	value := out[len(buf):]
	if len(value) > p.maxSize {
		return nil, "", tooLarge(len(value), p.maxSize)
	}
	r := &kgo.Record{
		Topic:   p.topics.Events,
		Key:     k,
		Value:   value,
		Headers: make([]kgo.RecordHeader, 1, 3), // room for traceparent and tracestate
	}
	r.Headers[0] = kgo.RecordHeader{Key: record.HeaderTenant, Value: t}
	otel.GetTextMapPropagator().Inject(ctx, (*headerCarrier)(&r.Headers))
	return r, e.ID, nil
}

func tooLarge(n, limit int) error {
	return &envelope.FieldError{Pointer: "", Err: envelope.ErrTooLarge, Detail: fmt.Sprintf("%d bytes, limit %d", n, limit)}
}

// headerCarrier lets an OpenTelemetry propagator write record headers.
type headerCarrier []kgo.RecordHeader

func (c *headerCarrier) Get(key string) string {
	for _, h := range *c {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

// Set replaces an existing header, as kotel's carrier does, so a tracing
// hook on the client and this injection never leave two traceparents.
func (c *headerCarrier) Set(key, value string) {
	for i, h := range *c {
		if h.Key == key {
			(*c)[i].Value = []byte(value)
			return
		}
	}
	*c = append(*c, kgo.RecordHeader{Key: key, Value: []byte(value)})
}

func (c *headerCarrier) Keys() []string {
	keys := make([]string, len(*c))
	for i, h := range *c {
		keys[i] = h.Key
	}
	return keys
}
