// Package fanout turns each event on <prefix>events into one delivery record
// per matching endpoint on <prefix>deliveries, exactly once.
//
// It consumes in the consumer group "hookstream-fanout" and produces through a
// franz-go GroupTransactSession: the delivery records of a whole poll batch,
// its dead letters and the batch's consumed offsets are committed in one Kafka
// transaction, so a crash or rebalance either exposes all of a batch's output
// (to read_committed readers) and moves the group past it, or none of it and
// the batch is processed again.
//
// A record that is not a valid event (bad envelope, no tenant header, type not
// in the catalog, data breaking the type's schema) is dead-lettered with the
// reason in the same transaction, and the partition moves on.
//
// Repeated event ids of one tenant are fanned out once within a window, using
// Redis (see WithDedupe).
package fanout

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"

	"github.com/hookstream/hookstream/envelope"
	"github.com/hookstream/hookstream/internal/record"
	"github.com/hookstream/hookstream/internal/txnid"
	"github.com/hookstream/hookstream/schemas"
	"github.com/hookstream/hookstream/topic"
)

// Group is the consumer group every fanout replica joins.
const Group = "hookstream-fanout"

// Defaults of the options below.
const (
	DefaultDedupeWindow       = 24 * time.Hour
	DefaultKeyPrefix          = "hookstream:"
	DefaultMaxBatch           = 2000
	DefaultLinger             = 3 * time.Millisecond
	DefaultTransactionTimeout = 10 * time.Second
)

// Matcher finds the endpoints an event goes to. subscription.Store is the
// real one.
type Matcher interface {
	// Match returns the ids of the enabled endpoints of tenant that
	// subscribe to eventType.
	Match(ctx context.Context, tenant, eventType string) ([]string, error)
	// Refresh makes every endpoint change acknowledged before the call
	// visible to the Match calls after it.
	Refresh(ctx context.Context) error
}

// Catalog validates event data. *schemas.Catalog is the real one; errors
// wrapping schemas.ErrUnknownType and *schemas.ValidationError get their own
// dead-letter reasons.
type Catalog interface {
	Validate(eventType string, data []byte) error
}

// ClientOpts returns the franz-go options fanout needs, to pass (after the
// seed brokers and before any overrides) to kgo.NewGroupTransactSession:
// group consumer of topics.Events, read_committed fetches, transactional
// producer with id txnID.
//
// KIP-447 stable offset fetches (kgo.RequireStableFetchOffsets) are always
// on in franz-go now, which is what lets txnID be unique per process: a new
// owner of a partition waits for the previous owner's pending offset commit
// to resolve instead of relying on a transactional id tied to the partition.
func ClientOpts(topics topic.Names, group, txnID string) []kgo.Opt {
	return []kgo.Opt{
		kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(topics.Events),
		// Cooperative (franz-go's default, made explicit): a member
		// joining or leaving moves only the partitions that must move
		// while the others keep consuming, and the session aborts an
		// open transaction only when partitions are taken from it.
		kgo.Balancers(kgo.CooperativeStickyBalancer()),
		// A new group starts at the oldest event: nothing published
		// before the first fanout started is skipped.
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.TransactionalID(txnID),
		// A crashed process's open transaction holds back read_committed
		// readers of the partitions it wrote to until it times out (its
		// id is never reused, so nothing fences it sooner). Matching and
		// dedupe run before the first record of a batch is produced, so
		// the transaction itself lasts only as long as a flush and a
		// commit. 10s is also Kafka Streams' EOS default.
		kgo.TransactionTimeout(DefaultTransactionTimeout),
	}
}

// TransactionalID returns a transactional id unique to this process:
// "hookstream-fanout-<hostname>-<8 random hex>" (see txnid.New for why not
// a stable one). With KIP-447 (Kafka 2.5+) zombie fencing comes from the
// group generation instead: a member that lost its partitions has its
// TxnOffsetCommit rejected and must abort, and the partitions' new owner
// does not fetch offsets while that commit is pending.
func TransactionalID() string { return txnid.New("fanout") }

type cfg struct {
	topics       topic.Names
	log          *slog.Logger
	dedupe       redis.Cmdable
	window       time.Duration
	keyPrefix    string
	maxEventSize int
	maxBatch     int
	linger       time.Duration
	meter        metric.MeterProvider
	backoffMin   time.Duration
	backoffMax   time.Duration
	endTimeout   time.Duration
	watch        CommitWatcher
}

// Option configures a Fanout.
type Option func(*cfg)

// WithTopics sets the topic names (default topic.New(topic.DefaultPrefix)).
// The events topic itself is set in ClientOpts; deliveries and dead letters
// go to n.Deliveries and n.Dead.
func WithTopics(n topic.Names) Option { return func(c *cfg) { c.topics = n } }

// WithLogger sets the logger (default: discard).
func WithLogger(l *slog.Logger) Option { return func(c *cfg) { c.log = l } }

// WithDedupe turns on event id dedupe in rdb (default off): an event whose
// (tenant, id) was fanned out within the dedupe window is skipped.
//
// Each event claims "<prefix>dedupe:<len(tenant)>:<tenant>:<id>" with
// SET NX EX window, the value being the partition and offset of the record
// claiming it. A key that holds the same record's partition:offset is not a
// duplicate: it is the record itself, processed again after an aborted
// transaction or a crash, so dedupe never drops an event on replay. The
// claims of a whole batch go in one pipelined round trip.
//
// If Redis forgets the keys (FLUSHALL, a new Redis), the window is
// forgotten: an id published again afterwards is fanned out again, a
// duplicate but never a loss. If Redis is unreachable, the batch's
// transaction is aborted and retried: nothing is skipped.
func WithDedupe(rdb redis.Cmdable) Option { return func(c *cfg) { c.dedupe = rdb } }

// WithDedupeWindow sets how long an event id is remembered (default 24h).
func WithDedupeWindow(d time.Duration) Option { return func(c *cfg) { c.window = d } }

// WithKeyPrefix sets the prefix of the Redis keys (default "hookstream:").
func WithKeyPrefix(p string) Option { return func(c *cfg) { c.keyPrefix = p } }

// WithMaxEventSize sets the largest envelope accepted; larger records are
// dead-lettered (default envelope.DefaultMaxSize, 256 KiB).
func WithMaxEventSize(n int) Option { return func(c *cfg) { c.maxEventSize = n } }

// WithMaxBatch sets how many records at most one transaction covers
// (default 2000).
func WithMaxBatch(n int) Option { return func(c *cfg) { c.maxBatch = n } }

// WithLinger sets how long a poll that brought fewer than WithMaxBatch
// records waits for more before its transaction starts (default
// DefaultLinger). A transaction's round trips cost the same for one event
// as for a thousand, so under a steady trickle a short wait makes each
// cheaper per event; it adds at most d to an event's latency. 0 turns it
// off.
func WithLinger(d time.Duration) Option { return func(c *cfg) { c.linger = d } }

// WithMeterProvider records metrics with mp (default: none).
func WithMeterProvider(mp metric.MeterProvider) Option { return func(c *cfg) { c.meter = mp } }

// WithRetryBackoff sets the wait before a batch is retried after Redis or
// the matcher failed: min, doubling up to max (default 200ms to 5s).
func WithRetryBackoff(minWait, maxWait time.Duration) Option {
	return func(c *cfg) { c.backoffMin, c.backoffMax = minWait, maxWait }
}

// Fanout is the events -> deliveries stage.
type Fanout struct {
	sess    *kgo.GroupTransactSession
	matcher Matcher
	catalog Catalog
	cfg     cfg

	events      metric.Int64Counter
	deliveries  metric.Int64Counter
	txns        metric.Int64Counter
	outcomeAttr map[string]metric.AddOption

	// Per-batch scratch space, reused so a batch allocates little more
	// than its output records.
	cands   []candidate
	out     []*kgo.Record
	matches map[matchKey][]string
	keyBuf  []byte
}

// New returns a Fanout consuming and producing through sess, which the
// caller builds with kgo.NewGroupTransactSession(ClientOpts(...)...) (a
// plain *kgo.Client cannot be used: the session must wrap the client's
// revoke and lost callbacks when it is created) and closes after Run
// returns, which leaves the group.
func New(sess *kgo.GroupTransactSession, matcher Matcher, catalog Catalog, opts ...Option) *Fanout {
	c := cfg{
		topics:       topic.New(topic.DefaultPrefix),
		log:          slog.New(slog.DiscardHandler),
		window:       DefaultDedupeWindow,
		keyPrefix:    DefaultKeyPrefix,
		maxEventSize: envelope.DefaultMaxSize,
		maxBatch:     DefaultMaxBatch,
		linger:       DefaultLinger,
		meter:        noop.NewMeterProvider(),
		backoffMin:   200 * time.Millisecond,
		backoffMax:   5 * time.Second,
		endTimeout:   30 * time.Second,
	}
	for _, o := range opts {
		o(&c)
	}
	if c.maxBatch <= 0 {
		c.maxBatch = DefaultMaxBatch
	}
	if c.window <= 0 {
		c.dedupe = nil
	}
	f := &Fanout{
		sess:    sess,
		matcher: matcher,
		catalog: catalog,
		cfg:     c,
		matches: map[matchKey][]string{},
	}
	m := c.meter.Meter("github.com/hookstream/hookstream/fanout")
	// Instrument errors only come from invalid names, which are constants.
	f.events, _ = m.Int64Counter("hookstream.fanout.events",
		metric.WithDescription("events consumed, by outcome: fanned_out, duplicate, dead_lettered"))
	f.deliveries, _ = m.Int64Counter("hookstream.fanout.deliveries",
		metric.WithDescription("delivery records committed"))
	f.txns, _ = m.Int64Counter("hookstream.fanout.transactions",
		metric.WithDescription("transactions ended, by result: committed, aborted"))
	f.outcomeAttr = map[string]metric.AddOption{}
	for _, k := range []string{"fanned_out", "duplicate", "dead_lettered"} {
		f.outcomeAttr[k] = metric.WithAttributes(attribute.String("outcome", k))
	}
	for _, k := range []string{"committed", "aborted"} {
		f.outcomeAttr[k] = metric.WithAttributes(attribute.String("result", k))
	}
	return f
}

// candidate is a valid event waiting for dedupe and matching.
type candidate struct {
	r      *kgo.Record
	tenant string
	id     string
	typ    string
	trace  []kgo.RecordHeader
	dup    bool
}

type matchKey struct{ tenant, typ string }

// batchStats counts one batch's outcomes, reported once it committed.
type batchStats struct {
	records, fannedOut, duplicates, dead, deliveries int
}

// Run consumes until ctx ends (returning nil) or the transactional producer
// fails for good (see ErrTransaction). Failures of Redis or the matcher abort
// the batch's transaction and retry it with backoff, so nothing is skipped.
// On cancellation, a batch whose output is computed is still committed (within
// 30s); one still being computed is aborted, to be processed by the next
// owner of its partitions.
func (f *Fanout) Run(ctx context.Context) error {
	wait := time.Duration(0)
	for {
		fs := f.sess.PollRecords(ctx, f.cfg.maxBatch)
		if n := fs.NumRecords(); n > 0 && n < f.cfg.maxBatch && f.cfg.linger > 0 {
			fs = f.lingerPoll(ctx, fs, n)
		}
		if fs.IsClientClosed() {
			return fmt.Errorf("fanout: %w", kgo.ErrClientClosed)
		}
		if ctx.Err() != nil {
			// Records polled but not processed are not committed:
			// the partitions' next owner processes them.
			return nil
		}
		fs.EachError(func(t string, p int32, err error) {
			if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
				return // the linger's own deadline
			}
			f.cfg.log.Warn("fetch error", "topic", t, "partition", p, "err", err)
		})
		if fs.NumRecords() == 0 {
			continue
		}
		err := f.batch(ctx, fs)
		switch {
		case err == nil:
			wait = 0
		case errors.Is(err, ErrTransaction):
			return err
		case ctx.Err() != nil:
			return nil
		default:
			// Redis or the matcher failed: the transaction was aborted
			// and the session rewound to the committed offsets, so the
			// same records come back on the next poll.
			wait = min(max(2*wait, f.cfg.backoffMin), f.cfg.backoffMax)
			f.cfg.log.Warn("batch aborted, retrying", "err", err, "retry_in", wait)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(wait):
			}
		}
	}
}

// lingerPoll adds to fs (n records) what arrives within the linger, up to
// the batch limit. Every record polled stays in fs: the session commits
// offsets past whatever was polled.
func (f *Fanout) lingerPoll(ctx context.Context, fs kgo.Fetches, n int) kgo.Fetches {
	lctx, cancel := context.WithTimeout(ctx, f.cfg.linger)
	defer cancel()
	for n < f.cfg.maxBatch && lctx.Err() == nil {
		more := f.sess.PollRecords(lctx, f.cfg.maxBatch-n)
		fs = append(fs, more...)
		n += more.NumRecords()
		if more.IsClientClosed() {
			break
		}
	}
	return fs
}

// ErrTransaction is wrapped by the error Run returns when the transactional
// producer failed for good (fenced, or Kafka unreachable past the client's
// retries): nothing of the open batch was committed, and the process should
// exit and be restarted.
var ErrTransaction = errors.New("fanout: transaction failed")

// batch processes one poll batch in one transaction.
func (f *Fanout) batch(ctx context.Context, fs kgo.Fetches) error {
	if err := f.sess.Begin(); err != nil {
		return fmt.Errorf("%w: begin: %w", ErrTransaction, err)
	}
	out, st, err := f.process(ctx, fs)
	if err != nil {
		if aerr := f.abort(ctx); aerr != nil {
			return errors.Join(err, aerr)
		}
		return err
	}
	// From here the batch is finished even when ctx ends: its output is
	// computed and committing it is quicker than having the next owner
	// redo it.
	ectx, cancel := context.WithTimeout(context.WithoutCancel(ctx), f.cfg.endTimeout)
	defer cancel()
	var produced kgo.FirstErrPromise
	for _, r := range out {
		f.sess.Produce(ectx, r, produced.Promise())
	}
	if err := f.sess.Client().Flush(ectx); err != nil {
		_ = f.abort(ctx)
		return fmt.Errorf("%w: flush: %w", ErrTransaction, err)
	}
	if err := produced.Err(); err != nil {
		if aerr := f.abort(ctx); aerr != nil {
			return errors.Join(err, aerr)
		}
		return fmt.Errorf("produce: %w", err)
	}
	committed, err := f.sess.End(ectx, kgo.TryCommit)
	if err != nil {
		f.txns.Add(ctx, 1, f.outcomeAttr["aborted"])
		return fmt.Errorf("%w: end: %w", ErrTransaction, err)
	}
	if !committed {
		// A rebalance happened: the session rewound to the committed
		// offsets and whichever member owns the partitions now redoes
		// the batch.
		f.txns.Add(ctx, 1, f.outcomeAttr["aborted"])
		f.cfg.log.Info("transaction aborted by a rebalance", "records", st.records)
		return nil
	}
	f.txns.Add(ctx, 1, f.outcomeAttr["committed"])
	if f.cfg.watch != nil {
		f.cfg.watch.Committed()
	}
	f.events.Add(ctx, int64(st.fannedOut), f.outcomeAttr["fanned_out"])
	f.events.Add(ctx, int64(st.duplicates), f.outcomeAttr["duplicate"])
	f.events.Add(ctx, int64(st.dead), f.outcomeAttr["dead_lettered"])
	f.deliveries.Add(ctx, int64(st.deliveries))
	f.cfg.log.Debug("batch committed", "records", st.records, "fanned_out", st.fannedOut,
		"duplicates", st.duplicates, "dead_lettered", st.dead, "deliveries", st.deliveries)
	return nil
}

// abort aborts the open transaction and rewinds the session to the
// committed offsets; an error leaves the producer unusable.
func (f *Fanout) abort(ctx context.Context) error {
	ectx, cancel := context.WithTimeout(context.WithoutCancel(ctx), f.cfg.endTimeout)
	defer cancel()
	if _, err := f.sess.End(ectx, kgo.TryAbort); err != nil {
		return fmt.Errorf("%w: end: %w", ErrTransaction, err)
	}
	f.txns.Add(ctx, 1, f.outcomeAttr["aborted"])
	return nil
}

// process computes a batch's output: delivery records in event order and
// dead letters. It produces nothing, so that the transaction, which starts
// with the first produced record, stays short whatever Redis does.
func (f *Fanout) process(ctx context.Context, fs kgo.Fetches) ([]*kgo.Record, batchStats, error) {
	var st batchStats
	// Every endpoint change acknowledged before these events were polled
	// must be visible to their matching.
	if err := f.matcher.Refresh(ctx); err != nil {
		return nil, st, fmt.Errorf("refresh endpoints: %w", err)
	}
	f.out = f.out[:0]
	f.cands = f.cands[:0]
	clear(f.matches)
	fs.EachRecord(func(r *kgo.Record) {
		st.records++
		c, reason := f.check(r)
		if reason != "" {
			st.dead++
			dl := record.Dead(r, f.cfg.topics.Dead, reason)
			dl.Context = r.Context
			f.out = append(f.out, dl)
			f.cfg.log.Warn("event dead-lettered", "reason", logReason(reason),
				"topic", r.Topic, "partition", r.Partition, "offset", r.Offset)
			return
		}
		f.cands = append(f.cands, c)
	})
	if err := f.claim(ctx, f.cands); err != nil {
		return nil, st, err
	}
	for i := range f.cands {
		c := &f.cands[i]
		if c.dup {
			st.duplicates++
			f.cfg.log.Debug("duplicate event skipped", "tenant", c.tenant, "id", c.id,
				"partition", c.r.Partition, "offset", c.r.Offset)
			continue
		}
		k := matchKey{c.tenant, c.typ}
		ids, ok := f.matches[k]
		if !ok {
			var err error
			if ids, err = f.matcher.Match(ctx, c.tenant, c.typ); err != nil {
				return nil, st, fmt.Errorf("match %s/%s: %w", c.tenant, c.typ, err)
			}
			f.matches[k] = ids
		}
		st.fannedOut++
		st.deliveries += len(ids)
		if err := f.appendMatch(ctx, c, ids); err != nil {
			return nil, st, err
		}
		for _, id := range ids {
			d := record.Delivery{
				EndpointID: id,
				Tenant:     c.tenant,
				EventID:    c.id,
				EventType:  c.typ,
				Body:       c.r.Value,
				Trace:      c.trace,
			}
			out := d.Record(f.cfg.topics.Deliveries)
			// With tracing hooks (kotel) on the client, the event's
			// context holds its "receive" span; producing under it
			// makes the delivery's traceparent a descendant of the
			// publisher's instead of a new root. Without hooks it is
			// nil and the event's own headers travel unchanged.
			out.Context = c.r.Context
			f.out = append(f.out, out)
		}
	}
	return f.out, st, nil
}

func isTrace(key string) bool { return key == record.HeaderTrace || key == record.HeaderTraceMeta }

// logReason is reason without a schema violation's message, which may
// quote the event's data ("'x' does not match pattern ..."): event data
// stays out of logs. The dead letter keeps the whole reason.
func logReason(reason string) string {
	if kind, _, ok := strings.Cut(reason, ": "); ok && strings.HasPrefix(kind, "schema_violation") {
		return kind
	}
	return reason
}

// check validates r as an event; reason is empty for a valid one.
func (f *Fanout) check(r *kgo.Record) (c candidate, reason string) {
	c.r = r
	var tenant []byte
	tenants := 0
	first, n := -1, 0
	for i, h := range r.Headers {
		switch h.Key {
		case record.HeaderTenant:
			tenants++
			if tenant == nil {
				tenant = h.Value
			}
		case record.HeaderTrace, record.HeaderTraceMeta:
			if first < 0 {
				first = i
			}
			n++
		}
	}
	if n > 0 {
		// Adjacent, as producers write them: share the record's headers
		// instead of copying them (Delivery.Record only reads Trace).
		c.trace = r.Headers[first : first+n : first+n]
		if slices.ContainsFunc(c.trace, func(h kgo.RecordHeader) bool { return !isTrace(h.Key) }) {
			c.trace = nil
			for _, h := range r.Headers[first:] {
				if isTrace(h.Key) {
					c.trace = append(c.trace, h)
				}
			}
		}
	}
	// The checks the producer makes, in its order, so that a record
	// written by any Kafka client is held to the same rules.
	switch {
	case len(tenant) == 0:
		return c, "no " + record.HeaderTenant + " header"
	case tenants > 1:
		return c, fmt.Sprintf("%d %s headers, want one", tenants, record.HeaderTenant)
	case !envelope.ValidID(string(tenant)):
		return c, "invalid " + record.HeaderTenant + " header: want 1-128 characters of [A-Za-z0-9_.:-]"
	}
	e, err := envelope.Decode(r.Value, f.cfg.maxEventSize)
	if err != nil {
		return c, err.Error()
	}
	if err := f.catalog.Validate(e.Event, e.Data); err != nil {
		var ve *schemas.ValidationError
		switch {
		case errors.As(err, &ve) && ve.Pointer == "":
			return c, "schema_violation: " + ve.Message
		case errors.As(err, &ve):
			return c, "schema_violation " + ve.Pointer + ": " + ve.Message
		case errors.Is(err, schemas.ErrUnknownType):
			return c, "unknown_event_type " + e.Event
		default:
			return c, "invalid_data: " + err.Error()
		}
	}
	if ptr, ok := envelope.RepeatedKey(e.Data); ok {
		return c, "repeated_key /data" + ptr
	}
	c.tenant, c.id, c.typ = string(tenant), e.ID, e.Event
	return c, ""
}
