// Package producer is the Go library platform services use to publish events
// to Hookstream: it validates each event against the catalog in schemas/,
// wraps it in the canonical envelope and produces it to <prefix>events,
// returning only once Kafka acknowledged it.
//
// Records follow the documented wire format: key = ordering key (the tenant
// unless WithKey says otherwise), value = envelope JSON, header
// hookstream-tenant, and the W3C trace context of the publishing context in
// traceparent/tracestate.
//
// A batch is all or nothing for read_committed readers, which is how fanout
// reads: PublishBatch writes two or more events in one Kafka transaction and
// aborts it on any failure. A single event is one record, atomic by itself,
// and takes the faster non-transactional path.
package producer

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"

	"github.com/hookstream/hookstream/envelope"
	"github.com/hookstream/hookstream/internal/record"
	"github.com/hookstream/hookstream/internal/txnid"
	"github.com/hookstream/hookstream/schemas"
	"github.com/hookstream/hookstream/topic"
)

// ErrInvalidTenant is wrapped when the tenant is empty or not 1 to 128
// characters of [A-Za-z0-9_.:-] (it travels in a header and in Redis keys).
var ErrInvalidTenant = errors.New("producer: invalid tenant")

// ErrOutcomeUnknown is wrapped when a publish failed but Kafka may still have
// accepted the events: a single event's produce request was on the wire when
// its deadline hit (possible only with a client that may fail in-flight
// records, such as one made with ClientOpts), or a batch's commit was sent
// and its answer lost. A batch stays atomic even then: all of it or none.
// Retrying with the same ids (WithID, Event.ID) is safe, since fanout
// delivers an id once within its dedupe window.
var ErrOutcomeUnknown = errors.New("producer: outcome unknown, Kafka may have accepted the events")

// ErrRejected is wrapped when Kafka refused the events for a reason a retry
// does not fix (not authorized for the topic or transactional id, record
// over the broker's size limit, policy violation); nothing was accepted. The
// *kerr.Error stays in the chain for errors.Is.
var ErrRejected = errors.New("producer: rejected by Kafka")

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
	prefix       string
	maxSize      int
	partitions   topic.Partitions
	meter        metric.MeterProvider
	propagator   propagation.TextMapPropagator
	batchClients int
	txnTimeout   time.Duration
	txnIDPrefix  string
}

// DefaultBatchClients is how many batches may run at once by default.
const DefaultBatchClients = 4

// DefaultTransactionTimeout is how long Kafka keeps a batch's transaction
// open by default; it equals the API's default publish timeout.
const DefaultTransactionTimeout = 10 * time.Second

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

// WithPropagator sets how the caller's trace context is written into each
// record's headers (traceparent, tracestate), so fanout and receivers
// continue the trace (default otel.GetTextMapPropagator()).
func WithPropagator(p propagation.TextMapPropagator) Option {
	return func(c *cfg) { c.propagator = p }
}

// WithBatchClients sets how many batches may be published at once (default
// DefaultBatchClients); more wait for a free client. A franz-go client runs
// one transaction at a time, so each concurrent batch needs a transactional
// client of its own; they are opened on first use from the options of the
// client given to New.
func WithBatchClients(n int) Option { return func(c *cfg) { c.batchClients = n } }

// WithTransactionTimeout sets how long Kafka lets a batch's transaction stay
// open before aborting it (default DefaultTransactionTimeout). When this
// process dies mid-batch, read_committed readers of the partitions it wrote
// wait that long, so keep it short, but no shorter than the time a publish
// may take (the ClientOpts timeout), or Kafka aborts slow batches.
func WithTransactionTimeout(d time.Duration) Option { return func(c *cfg) { c.txnTimeout = d } }

// WithTransactionalIDPrefix sets the prefix of the batch clients'
// transactional ids (default "hookstream-producer-<hostname>-<8 random
// hex>"); client i uses "<prefix>-<i>". Every process needs its own prefix:
// two processes sharing an id fence each other. A fixed prefix per replica
// (a StatefulSet pod name) lets a restarted process abort its predecessor's
// open transactions at once instead of after the transaction timeout, and
// suits prefixed Kafka ACLs.
func WithTransactionalIDPrefix(p string) Option { return func(c *cfg) { c.txnIDPrefix = p } }

// Producer publishes events. It is safe for concurrent use.
type Producer struct {
	client *kgo.Client
	// cancelsInFlight: the client may fail a record whose request is on
	// the wire, so a timed-out single event may still have been written.
	cancelsInFlight bool
	txns            *txnPool
	catalog         *schemas.Catalog
	topics          topic.Names
	published       metric.Int64Counter
	byType          sync.Map // event type -> metric.AddOption, so counting allocates nothing
	cfg
}

// New returns a producer writing through client, a plain (non-group,
// non-transactional) client. Its producer settings (acks, idempotency,
// timeouts) are the caller's; see ClientOpts. Batches run on transactional
// clients the producer opens with the same options (client.Opts(), less
// ClientOpts' in-flight cancellation) when first needed; Close closes them.
// franz-go refuses a transactional client with kgo.DisableIdempotentWrite or
// a kgo.AllowIdempotentProduceCancellation not from ClientOpts, so a client
// with either can publish single events only.
func New(client *kgo.Client, catalog *schemas.Catalog, opts ...Option) *Producer {
	c := cfg{prefix: topic.DefaultPrefix, maxSize: envelope.DefaultMaxSize, partitions: topic.DefaultPartitions,
		batchClients: DefaultBatchClients, txnTimeout: DefaultTransactionTimeout}
	for _, o := range opts {
		o(&c)
	}
	if c.maxSize <= 0 {
		c.maxSize = envelope.DefaultMaxSize
	}
	if c.meter == nil {
		c.meter = otel.GetMeterProvider()
	}
	if c.propagator == nil {
		c.propagator = otel.GetTextMapPropagator()
	}
	if c.batchClients <= 0 {
		c.batchClients = DefaultBatchClients
	}
	if c.txnTimeout <= 0 {
		c.txnTimeout = DefaultTransactionTimeout
	}
	if c.txnIDPrefix == "" {
		c.txnIDPrefix = txnid.New("producer")
	}
	p := &Producer{client: client, catalog: catalog, topics: topic.New(c.prefix), cfg: c}
	if client != nil {
		p.cancelsInFlight = client.OptValue(kgo.AllowIdempotentProduceCancellation) == true ||
			client.OptValue(kgo.DisableIdempotentWrite) == true
		p.txns = newTxnPool(client, c)
	}
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
// before the publishing context ends, is failed, and the client re-checks
// about twice a second (metadata min age) rather than every 5 s while Kafka
// is unreachable. Idempotent writes stay on for the client's own retries.
//
// What a failed publish means:
//
//   - A batch never becomes visible to read_committed readers: Kafka
//     acknowledged nothing of it, or its transaction is aborted (by
//     PublishBatch, or by Kafka at the transaction timeout). The one
//     exception is a commit whose answer was lost (ErrOutcomeUnknown): then
//     all of the batch may be visible.
//   - A single event is failed even while its request is on the wire, so
//     that Publish returns within timeout however Kafka behaves; a failed
//     record is never sent again. An event whose request was on the wire
//     when the timeout hit may have been written, so such errors wrap
//     ErrOutcomeUnknown.
//
// The batch clients leave out the in-flight cancellation (franz-go refuses
// it for transactions, and an aborted transaction needs none); PublishBatch
// still returns when ctx ends and aborts the batch in the background.
func ClientOpts(timeout time.Duration) []kgo.Opt {
	return []kgo.Opt{
		kgo.RecordDeliveryTimeout(timeout),
		nonTransactional{kgo.AllowIdempotentProduceCancellation()},
		kgo.MetadataMinAge(500 * time.Millisecond),
	}
}

// nonTransactional marks an option that the batch clients, derived from the
// producer's client with client.Opts(), must leave out.
type nonTransactional struct{ kgo.Opt }

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
// acknowledge the record, and may wrap ErrRejected or ErrOutcomeUnknown. The
// record carries ctx: when ctx ends the client fails it (see ClientOpts), and
// Publish returns once the client has acknowledged or failed it.
func (p *Producer) Publish(ctx context.Context, tenant, eventType string, data []byte, opts ...PublishOption) (string, error) {
	ev := Event{Type: eventType, Data: data}
	for _, o := range opts {
		o(&ev)
	}
	r, id, err := p.build(ctx, tenant, &ev)
	if err != nil {
		return "", err
	}
	if err := p.produceOne(ctx, r); err != nil {
		return "", err
	}
	p.count(ctx, ev.Type, 1)
	return id, nil
}

// PublishBatch validates every event first and produces nothing unless all
// are valid (the error is then a *BatchError naming the first bad one). It
// returns the ids in order once Kafka acknowledged every record.
//
// Two or more events are written in one Kafka transaction: on any error
// none of them becomes visible to read_committed readers, except that after
// an error wrapping ErrOutcomeUnknown all of them may be. PublishBatch
// returns when ctx ends even if Kafka has not answered; the batch is then
// aborted in the background, never committed. Errors are as for Publish.
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
	var err error
	switch len(recs) {
	case 0:
		return ids, nil
	case 1:
		err = p.produceOne(ctx, recs[0])
	default:
		err = p.produceAll(ctx, recs)
	}
	if err != nil {
		return nil, err
	}
	for i := range events {
		p.count(ctx, events[i].Type, 1)
	}
	return ids, nil
}

// Close closes the transactional clients that batches opened (one still
// busy with a batch or a background abort closes when that ends). The client
// given to New stays open: it is the caller's. Batches published after Close
// fail; single events still go through the caller's client.
func (p *Producer) Close() {
	if p.txns != nil {
		p.txns.close()
	}
}

// produceOne produces one record on the non-transactional client.
func (p *Producer) produceOne(ctx context.Context, r *kgo.Record) error {
	if err := p.client.ProduceSync(ctx, r).FirstErr(); err != nil {
		return p.produceError(err, p.cancelsInFlight && timedOut(err))
	}
	return nil
}

// rejected reports whether Kafka refused records for a reason that a retry
// does not fix.
func rejected(err error) bool {
	for _, e := range []error{
		kerr.TopicAuthorizationFailed, kerr.ClusterAuthorizationFailed, kerr.TransactionalIDAuthorizationFailed,
		kerr.SaslAuthenticationFailed, kerr.MessageTooLarge, kerr.RecordListTooLarge, kerr.InvalidRecord,
		kerr.PolicyViolation, kerr.InvalidTopicException,
	} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// timedOut reports whether a record failed because its time ran out rather
// than because Kafka answered with an error.
func timedOut(err error) bool {
	return errors.Is(err, kgo.ErrRecordTimeout) || errors.Is(err, kgo.ErrRecordRetries) ||
		errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled)
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
	if ptr, ok := envelope.RepeatedKey(ev.Data); ok {
		return nil, "", &envelope.FieldError{Pointer: "/data" + ptr, Err: envelope.ErrInvalidField, Detail: "repeated key; each key may appear once per object"}
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
	p.propagator.Inject(ctx, (*headerCarrier)(&r.Headers))
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
