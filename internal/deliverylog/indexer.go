package deliverylog

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/segmentio/encoding/json"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hookstream/hookstream/deliverer"
)

// Keys of the indexer's own state. The generation marks an index built
// from the topic's start of window: when Redis was flushed it is gone, and
// the indexer starts over rather than trust offsets that outlived the
// entries they stand for.
const (
	keyOffsets    = "dl:v2:indexer:offsets"
	keyGeneration = "dl:v2:indexer:generation"
)

// errTrailing: an attempts record has bytes after its JSON value.
var errTrailing = errors.New("deliverylog: data after the attempt")

// errFlushed: Redis lost the index under the indexer.
var errFlushed = errors.New("deliverylog: index flushed")

// IndexerConfig configures an Indexer.
type IndexerConfig struct {
	Seeds []string
	Topic string // the attempts topic
	// Dead, when set, is read too: which deliveries went dead.
	Dead string
	// Matches is fanout's record of every accepted event (the events
	// list, no_endpoints and disabled endpoints); Retries holds parked
	// deliveries (status parked, next attempt time).
	Matches   string
	Retries   string
	Retention time.Duration
	// Schedule is the deliverers' retry schedule, to estimate the next
	// attempt of a failed delivery (default deliverer.DefaultSchedule).
	Schedule  deliverer.Schedule
	Log       *slog.Logger
	KafkaOpts []kgo.Opt // extra client options (TLS, SASL, tracing)
	// CheckEvery is how often a quiet indexer checks that Redis still
	// holds the index; 0 = every second.
	CheckEvery time.Duration
}

func (c IndexerConfig) checkEvery() time.Duration {
	if c.CheckEvery > 0 {
		return c.CheckEvery
	}
	return time.Second
}

// Indexer consumes the attempts topic into an Index. It keeps its own
// offsets in Redis next to the index, written after the entries they
// cover: a crash replays a little, and replays are idempotent.
type Indexer struct {
	cfg IndexerConfig
	rdb redis.UniversalClient
	ix  *Index
	pl  *poll // reused from poll to poll (apply)
}

// NewIndexer returns an Indexer writing to rdb.
func NewIndexer(cfg IndexerConfig, rdb redis.UniversalClient) *Indexer {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	var opts []IndexOption
	if len(cfg.Schedule) > 0 {
		opts = append(opts, WithSchedule(cfg.Schedule))
	}
	return &Indexer{cfg: cfg, rdb: rdb, ix: NewIndex(rdb, cfg.Retention, opts...)}
}

// Index returns the index the indexer writes.
func (x *Indexer) Index() *Index { return x.ix }

// Run indexes until ctx ends, starting over from the retention window
// whenever Redis was flushed.
func (x *Indexer) Run(ctx context.Context) error {
	for {
		err := x.run(ctx)
		switch {
		case errors.Is(err, errFlushed):
			x.cfg.Log.Warn("deliverylog: index flushed, rebuilding from the attempts topic")
			continue
		case ctx.Err() != nil:
			return nil
		case err != nil:
			x.cfg.Log.Error("deliverylog: indexer", "err", err)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(time.Second):
			}
		}
	}
}

// pollRecords bounds one poll, and so one Redis pipeline: large enough to
// keep the round trips few, small enough to keep memory flat.
const pollRecords = 5000

func (x *Indexer) run(ctx context.Context) error {
	gen, starts, err := x.resume(ctx)
	if err != nil {
		return err
	}
	cl, err := kgo.NewClient(append([]kgo.Opt{
		kgo.SeedBrokers(x.cfg.Seeds...),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumePartitions(starts),
		// An indexer that falls behind must not hold the backlog in
		// memory: franz-go otherwise buffers up to 50 MiB per fetch, and
		// one Redis pipeline per poll held every command of it (2 GiB of
		// RSS in bench (g)). Fetches are capped and each poll takes at
		// most pollRecords.
		kgo.FetchMaxBytes(8 << 20),
		kgo.FetchMaxPartitionBytes(1 << 20),
		kgo.MaxConcurrentFetches(2),
		// The index needs seconds of lag, not milliseconds: a broker
		// waits for a batch worth a round trip rather than answering
		// every few records on four topics. A poll's fixed Redis costs
		// (a script call per tenant, the endpoint states it loads, the
		// offsets) are shared by its records: at 64 KiB bench (a)'s polls
		// held about 14 attempts per script call and Redis spent 27 µs
		// per delivery; at 1 MiB 18-19 µs, with index lag p99 0.65 s
		// (4 MiB and 500 ms: 17-18 µs, but lag p99 1.8 s).
		kgo.FetchMinBytes(1 << 20),
		kgo.FetchMaxWait(300 * time.Millisecond),
	}, x.cfg.KafkaOpts...)...)
	if err != nil {
		return fmt.Errorf("deliverylog: kafka client: %w", err)
	}
	defer cl.Close()
	done := newHousekeeping()
	for {
		// Polls time out, so that a flush is noticed while the topic is
		// quiet too.
		pctx, cancel := context.WithTimeout(ctx, x.cfg.checkEvery())
		fs := cl.PollRecords(pctx, pollRecords)
		cancel()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var ferr error
		fs.EachError(func(_ string, _ int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) && ferr == nil {
				ferr = err
			}
		})
		if ferr != nil {
			return fmt.Errorf("deliverylog: fetch: %w", ferr)
		}
		if err := x.apply(ctx, gen, fs, done); err != nil {
			return err
		}
	}
}

// resume reads where to start each partition: after the stored offsets,
// or, with no generation (first start, or Redis flushed), from the start
// of the retention window under a new generation.
func (x *Indexer) resume(ctx context.Context) (string, map[string]map[int32]kgo.Offset, error) {
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(x.cfg.Seeds...)}, x.cfg.KafkaOpts...)...)
	if err != nil {
		return "", nil, fmt.Errorf("deliverylog: kafka client: %w", err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	topics := x.topics()
	ends, err := adm.ListEndOffsets(ctx, topics...)
	if err != nil {
		return "", nil, fmt.Errorf("deliverylog: partitions of %v: %w", topics, err)
	}
	gen, err := x.rdb.Get(ctx, keyGeneration).Result()
	fresh := errors.Is(err, redis.Nil)
	if err != nil && !fresh {
		return "", nil, fmt.Errorf("deliverylog: generation: %w", err)
	}
	stored := map[string]string{}
	if fresh {
		// Whatever index keys exist were written without a generation:
		// after a flush, by the polls between the flush and its
		// noticing. Their state would mark the records they hold as
		// indexed, and with them every earlier record of the same
		// endpoints, which the flush took: the rebuild starts empty.
		if err := x.sweep(ctx); err != nil {
			return "", nil, err
		}
		gen = strconv.FormatInt(time.Now().UnixNano(), 36)
		if err := x.rdb.Del(ctx, keyOffsets).Err(); err != nil {
			return "", nil, fmt.Errorf("deliverylog: reset offsets: %w", err)
		}
		if err := x.rdb.Set(ctx, keyGeneration, gen, 0).Err(); err != nil {
			return "", nil, fmt.Errorf("deliverylog: generation: %w", err)
		}
	} else if stored, err = x.rdb.HGetAll(ctx, keyOffsets).Result(); err != nil {
		return "", nil, fmt.Errorf("deliverylog: offsets: %w", err)
	}
	windowStart := time.Now().Add(-x.ix.retention).UnixMilli()
	starts := map[string]map[int32]kgo.Offset{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Err != nil {
			return
		}
		if starts[o.Topic] == nil {
			starts[o.Topic] = map[int32]kgo.Offset{}
		}
		starts[o.Topic][o.Partition] = kgo.NewOffset().AfterMilli(windowStart)
		if v, ok := stored[offsetField(o.Topic, o.Partition)]; ok {
			if n, err := strconv.ParseInt(v, 10, 64); err == nil {
				starts[o.Topic][o.Partition] = kgo.NewOffset().At(n)
			}
		}
	})
	return gen, starts, nil
}

// sweepPattern matches every key of the index, all tenants.
const sweepPattern = "dl:v2:{*"

// sweep deletes every key of the index, on every master of a Cluster.
func (x *Indexer) sweep(ctx context.Context) error {
	del := func(ctx context.Context, c *redis.Client) error {
		it := c.Scan(ctx, 0, sweepPattern, 1000).Iterator()
		var keys []string
		flush := func() error {
			if len(keys) == 0 {
				return nil
			}
			// One key per command (a Cluster master holds many slots),
			// a thousand per round trip.
			_, err := c.Pipelined(ctx, func(p redis.Pipeliner) error {
				for _, k := range keys {
					p.Unlink(ctx, k)
				}
				return nil
			})
			keys = keys[:0]
			return err
		}
		for it.Next(ctx) {
			if keys = append(keys, it.Val()); len(keys) == 1000 {
				if err := flush(); err != nil {
					return err
				}
			}
		}
		if err := it.Err(); err != nil {
			return err
		}
		return flush()
	}
	var err error
	switch c := x.rdb.(type) {
	case *redis.ClusterClient:
		err = c.ForEachMaster(ctx, del)
	case *redis.Client:
		err = del(ctx, c)
	default:
		err = fmt.Errorf("unsupported client %T", x.rdb)
	}
	if err != nil {
		return fmt.Errorf("deliverylog: clear the index for a rebuild: %w", err)
	}
	return nil
}

// apply indexes one poll's records, then stores the offsets after them,
// then checks the generation: a flush between two polls is seen here and
// the index rebuilt, whatever the offsets now say.
func (x *Indexer) apply(ctx context.Context, gen string, fs kgo.Fetches, done *housekeeping) error {
	type partition struct {
		topic string
		p     int32
	}
	next := map[partition]int64{}
	err := x.ix.pipelined(ctx, func(p redis.Pipeliner) error {
		// A rerun after NOSCRIPT queues everything again.
		if x.pl == nil {
			x.pl = x.ix.newPoll(done)
		}
		pl := x.pl
		pl.reset(done)
		fs.EachRecord(func(r *kgo.Record) {
			next[partition{r.Topic, r.Partition}] = r.Offset + 1
			x.queue(ctx, p, pl, r)
		})
		return pl.flush(ctx, p)
	})
	if err == nil {
		err = x.pl.settle(ctx)
	}
	if err != nil {
		return fmt.Errorf("deliverylog: index: %w", err)
	}
	if len(next) > 0 {
		fields := make(map[string]any, len(next))
		for tp, o := range next {
			fields[offsetField(tp.topic, tp.p)] = o
		}
		if err := x.rdb.HSet(ctx, keyOffsets, fields).Err(); err != nil {
			return fmt.Errorf("deliverylog: store offsets: %w", err)
		}
	}
	got, err := x.rdb.Get(ctx, keyGeneration).Result()
	if errors.Is(err, redis.Nil) || err == nil && got != gen {
		return errFlushed
	}
	if err != nil {
		return fmt.Errorf("deliverylog: generation: %w", err)
	}
	return nil
}

// queue adds record r's index writes to the poll.
func (x *Indexer) queue(ctx context.Context, p redis.Pipeliner, pl *poll, r *kgo.Record) {
	switch r.Topic {
	case x.cfg.Dead:
		x.ix.addDead(ctx, p, r)
		return
	case x.cfg.Matches:
		pl.addMatch(ctx, p, r)
		return
	case x.cfg.Retries:
		pl.addParked(ctx, p, r)
		return
	}
	var a deliverer.Attempt
	if err := decodeSummaryFields(r.Value, &a); err != nil || a.Tenant == "" || a.EndpointID == "" {
		x.cfg.Log.Warn("deliverylog: skip unreadable attempt record", "partition", r.Partition, "offset", r.Offset)
		return
	}
	pl.add(ctx, p, r.Partition, r.Offset, &a)
}

// topics are the topics the indexer reads.
func (x *Indexer) topics() []string {
	ts := []string{x.cfg.Topic}
	for _, t := range []string{x.cfg.Dead, x.cfg.Matches, x.cfg.Retries} {
		if t != "" {
			ts = append(ts, t)
		}
	}
	return ts
}

func offsetField(topic string, partition int32) string {
	return topic + "/" + strconv.Itoa(int(partition))
}

// summaryRecord holds the fields of an attempts record the index keeps. The
// heavy ones (request headers, response body, error text) stay in Kafka;
// not decoding them was a third of the indexer's JSON work.
type summaryRecord struct {
	EndpointID        string    `json:"endpoint_id"`
	EventID           string    `json:"event_id"`
	EventType         string    `json:"event_type"`
	Tenant            string    `json:"tenant"`
	Attempt           int       `json:"attempt"`
	Status            int       `json:"status"`
	LatencyMS         int64     `json:"latency_ms"`
	Outcome           string    `json:"outcome"`
	At                time.Time `json:"at"`
	ErrorClass        string    `json:"error_class"`
	Trigger           string    `json:"trigger"`
	ResponseTruncated bool      `json:"response_truncated"`
}

// summaryFlags decode without copying: the strings point into the
// record, which outlives the poll, and every key made of them is a new
// string, so nothing long-lived holds a record.
const summaryFlags = json.ZeroCopy | json.DontMatchCaseInsensitiveStructFields

// decodeSummaryFields decodes the summary fields of an attempts record.
func decodeSummaryFields(v []byte, a *deliverer.Attempt) error {
	var s summaryRecord
	rest, err := json.Parse(v, &s, summaryFlags)
	if err != nil {
		return err
	}
	if len(bytes.TrimSpace(rest)) > 0 {
		return errTrailing
	}
	*a = deliverer.Attempt{EndpointID: s.EndpointID, EventID: s.EventID, EventType: s.EventType, Tenant: s.Tenant,
		Attempt: s.Attempt, Status: s.Status, LatencyMS: s.LatencyMS, Outcome: s.Outcome, At: s.At,
		ErrorClass: s.ErrorClass, Trigger: s.Trigger, ResponseTruncated: s.ResponseTruncated}
	return nil
}
