package deliverer

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"go.opentelemetry.io/otel"

	"github.com/hookstream/hookstream/internal/groupwatch"
	"github.com/hookstream/hookstream/producer"
	"github.com/hookstream/hookstream/sender"
	"github.com/hookstream/hookstream/subscription"
	"github.com/hookstream/hookstream/topic"
)

// Group is the consumer group deliverers join by default.
const Group = "hookstream-deliverer"

// Sender makes one delivery attempt (*sender.Sender).
type Sender interface {
	Send(ctx context.Context, req sender.Request) sender.Result
}

// Endpoints looks endpoints up and disables them (*subscription.Store).
// Endpoint returns an error wrapping subscription.ErrNotFound for a deleted
// endpoint.
type Endpoints interface {
	Endpoint(ctx context.Context, id string) (*subscription.Endpoint, error)
	Disable(ctx context.Context, id, reason string) error
}

// EventPublisher publishes the endpoint.disabled event (*producer.Producer).
type EventPublisher interface {
	Publish(ctx context.Context, tenant, eventType string, data []byte, opts ...producer.PublishOption) (string, error)
}

// Deliverer is one member of the deliverer group.
type Deliverer struct {
	cfg    config
	client *kgo.Client
	adm    *kadm.Client
	eps    Endpoints
	snd    Sender
	reader *reader   // lanes read retries back through it
	slots  *fairPool // global in-flight bound, shared fairly by tenants
	// goroutines runs the attempts.
	goroutines *warm
	m          *metrics
	kopts      []kgo.Opt
	// ready is closed once Run has set client and adm; kgo may call the
	// rebalance callbacks before NewClient returns.
	ready chan struct{}

	mu      sync.Mutex
	workers map[int32]*worker
	closing bool

	commitMu sync.Mutex // one commit at a time, so offsets never go back
	watch    *groupwatch.Watch

	failOnce sync.Once
	failErr  error
	failRun  context.CancelCauseFunc
}

// New returns a Deliverer whose Kafka client Run builds from kafka, the
// connection options (seed brokers, TLS, SASL, session timeout...), plus
// ClientOpts and the rebalance callbacks. New does not contact Kafka.
//
// The client is built by the Deliverer rather than passed in because the
// group's rebalance callbacks, which a kgo client fixes at creation, must
// reach it, and because a kgo group client joins the group as soon as it
// exists: building it in Run means nothing is consumed before Run.
func New(kafka []kgo.Opt, endpoints Endpoints, snd Sender, opts ...Option) (*Deliverer, error) {
	c := config{
		topics:           topic.New(topic.DefaultPrefix),
		group:            Group,
		policy:           policy{schedule: DefaultSchedule, park: DefaultParkThreshold, disableAfter: DefaultDisableAfter, jitter: jitter20},
		maxInFlight:      DefaultMaxInFlight,
		unordered:        DefaultUnorderedConcurrency,
		maxBuffered:      DefaultMaxBuffered,
		maxBufferedBytes: DefaultMaxBufferedBytes,
		drain:            DefaultDrainTimeout,
		commitEvery:      DefaultCommitInterval,
	}
	c.recoveredAfter = DefaultRecoveredAfter
	for _, o := range opts {
		o(&c)
	}
	switch {
	case len(c.policy.schedule) == 0:
		return nil, fmt.Errorf("deliverer: %w: empty", ErrInvalidSchedule)
	case c.policy.schedule[0] != 0:
		return nil, fmt.Errorf("deliverer: %w: the first attempt is immediate, so the schedule starts with 0", ErrInvalidSchedule)
	case c.maxInFlight < 1, c.unordered < 1, c.maxBuffered < 1, c.maxBufferedBytes < 1, c.tenantShare < 0:
		return nil, errors.New("deliverer: max in flight, unordered concurrency, max buffered and max buffered bytes must be at least 1, tenant share not negative")
	}
	if c.log == nil {
		c.log = slog.Default()
	}
	if c.meter == nil {
		c.meter = otel.GetMeterProvider()
	}
	m, err := newMetrics(c.meter)
	if err != nil {
		return nil, err
	}
	d := &Deliverer{
		cfg:   c,
		eps:   endpoints,
		snd:   snd,
		slots: newFairPool(c.maxInFlight, cmp.Or(c.tenantShare, max(1, c.maxInFlight/8))),
		// Idle goroutines are kept a few seconds: long enough to carry
		// steady load, short enough not to outlive Run by much.
		goroutines: newWarm(3 * time.Second),
		m:          m,
		ready:      make(chan struct{}),
		workers:    map[int32]*worker{},
		watch:      groupwatch.New(time.Now),
	}
	if err := d.watch.Register(c.meter.Meter("hookstream/deliverer"), "hookstream.deliverer", "deliverer"); err != nil {
		return nil, err
	}
	d.kopts = append(append([]kgo.Opt{}, kafka...), ClientOpts(c.topics, c.group)...)
	d.kopts = append(d.kopts,
		kgo.OnPartitionsAssigned(d.assigned),
		kgo.OnPartitionsRevoked(d.revoked),
		kgo.OnPartitionsLost(d.lost),
	)
	return d, nil
}

// ClientOpts are the kgo options of a deliverer's client, apart from the
// rebalance callbacks New adds: group over deliveries and retries with a
// cooperative co-partitioned balancer (partition i of both to one member,
// as both topics have the same partition count; see balancer),
// read_committed, manual commits, rebalances only between polls, reading a new group from the start, and a partitioner that
// writes retries records to the partition set on the record (the worker's
// own) and hashes the key elsewhere. Fetches wait at most 500ms for data:
// a partition resumed after the catch-up or after backpressure is fetched
// only once the fetch in flight returns.
func ClientOpts(topics topic.Names, group string) []kgo.Opt {
	return []kgo.Opt{
		kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(topics.Deliveries, topics.Retries),
		kgo.Balancers(balancer{}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(500 * time.Millisecond),
		kgo.RecordPartitioner(partitioner{manual: topics.Retries, hash: kgo.StickyKeyPartitioner(nil)}),
	}
}

// partitioner sends records of one topic to r.Partition and hashes the key
// for every other.
type partitioner struct {
	manual string
	hash   kgo.Partitioner
}

func (p partitioner) ForTopic(t string) kgo.TopicPartitioner {
	if t == p.manual {
		return kgo.ManualPartitioner().ForTopic(t)
	}
	return p.hash.ForTopic(t)
}

// fail stops Run with err: Kafka refused state the deliverer cannot go on
// without (a parked or dead-lettered record). What was not finished is
// redelivered by the next owner.
func (d *Deliverer) fail(err error) {
	d.failOnce.Do(func() {
		d.cfg.log.Error("deliverer: stopping", "err", err)
		d.mu.Lock()
		d.failErr = err
		cancel := d.failRun
		d.mu.Unlock()
		if cancel != nil {
			cancel(err)
		}
	})
}

// Run joins the group and consumes until ctx ends or Kafka fails the
// deliverer. Then it stops taking records, lets requests in flight finish
// within the drain timeout, commits what finished, leaves the group and
// closes its client. Run may be called once.
func (d *Deliverer) Run(ctx context.Context) error {
	cl, err := kgo.NewClient(d.kopts...)
	if err != nil {
		return fmt.Errorf("deliverer: kafka client: %w", err)
	}
	d.client, d.adm, d.reader = cl, kadm.NewClient(cl), newReader(cl, d.cfg.topics.Retries)
	close(d.ready)

	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	d.mu.Lock()
	d.failRun = cancel
	failed := d.failErr
	d.mu.Unlock()
	if failed != nil {
		cancel(failed)
	}

	var wg sync.WaitGroup
	wg.Go(func() { d.commitLoop(ctx) })

	for ctx.Err() == nil {
		fs := d.client.PollFetches(ctx)
		if ctx.Err() != nil || fs.IsClientClosed() {
			d.client.AllowRebalance()
			break
		}
		fs.EachError(func(t string, p int32, err error) {
			if !errors.Is(err, context.Canceled) {
				d.cfg.log.Warn("deliverer: fetch", "topic", t, "partition", p, "err", err)
			}
		})
		fs.EachPartition(func(p kgo.FetchTopicPartition) {
			if len(p.Records) == 0 {
				return
			}
			d.mu.Lock()
			w := d.workers[p.Partition]
			d.mu.Unlock()
			if w != nil {
				w.post(evRecords{retry: p.Topic == d.cfg.topics.Retries, recs: p.Records})
			}
		})
		d.client.AllowRebalance()
	}
	wg.Wait()
	d.shutdown()
	d.client.Close()
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.failErr
}

// shutdown drains every worker within the drain timeout, stops them and
// commits what finished.
func (d *Deliverer) shutdown() {
	d.mu.Lock()
	d.closing = true
	ws := make([]*worker, 0, len(d.workers))
	for _, w := range d.workers {
		ws = append(ws, w)
	}
	d.mu.Unlock()
	// One deadline for all workers: the drain timeout bounds the whole
	// drain, however many partitions are busy.
	ctx, cancel := context.WithTimeout(context.Background(), d.cfg.drain)
	defer cancel()
	for _, w := range ws {
		w.post(evDrain{})
	}
	for _, w := range ws {
		select {
		case <-w.drained:
		case <-ctx.Done():
		}
	}
	d.release(ws, true)
}

// stopGrace bounds how long a stopping worker waits for Kafka to acknowledge
// what it already produced (twice: once before giving up on the acks, once
// after), and the final commit takes at most as long.
const stopGrace = time.Second

// StopTimeout is the longest Run takes to return after the drain timeout
// once its context ended: a shutdown grace must leave room for it.
const StopTimeout = 3 * stopGrace

// release stops ws (cancelling requests in flight), optionally commits what
// they finished, and forgets them.
func (d *Deliverer) release(ws []*worker, commit bool) {
	if len(ws) == 0 {
		return
	}
	var wg sync.WaitGroup
	for _, w := range ws {
		wg.Go(func() { w.stop(stopGrace) })
	}
	wg.Wait()
	if commit {
		ctx, cancel := context.WithTimeout(context.Background(), stopGrace)
		d.commit(ctx, ws)
		cancel()
	}
	parts := make([]int32, 0, len(ws))
	d.mu.Lock()
	for _, w := range ws {
		if d.workers[w.part] == w {
			delete(d.workers, w.part)
		}
		parts = append(parts, w.part)
	}
	d.mu.Unlock()
	// Pauses outlive assignments in kgo; a later assignment pauses afresh.
	d.client.ResumeFetchPartitions(map[string][]int32{d.cfg.topics.Deliveries: parts, d.cfg.topics.Retries: parts})
}

func partitionsOf(m map[string][]int32, topics topic.Names) []int32 {
	seen := map[int32]bool{}
	var out []int32
	for _, t := range []string{topics.Deliveries, topics.Retries} {
		for _, p := range m[t] {
			if !seen[p] {
				seen[p] = true
				out = append(out, p)
			}
		}
	}
	return out
}

func (d *Deliverer) assigned(ctx context.Context, cl *kgo.Client, m map[string][]int32) {
	<-d.ready
	parts := partitionsOf(m, d.cfg.topics)
	var fresh []*worker
	d.mu.Lock()
	if !d.closing {
		for _, p := range parts {
			if d.workers[p] == nil {
				w := newWorker(d, p)
				d.workers[p] = w
				fresh = append(fresh, w)
			}
		}
	}
	d.mu.Unlock()
	d.watch.Assigned(m)
	if len(fresh) == 0 {
		return
	}
	ps := make([]int32, len(fresh))
	for i, w := range fresh {
		ps[i] = w.part
	}
	// Live records wait until the parked ones are back in their lanes;
	// fetching has not begun yet, so nothing of deliveries[i] is buffered.
	cl.PauseFetchPartitions(map[string][]int32{d.cfg.topics.Deliveries: ps})
	d.cfg.log.Info("deliverer: partitions assigned", "partitions", ps)
	for _, w := range fresh {
		go w.run()
	}
	go d.catchUp(fresh)
}

func (d *Deliverer) revoked(_ context.Context, _ *kgo.Client, m map[string][]int32) {
	<-d.ready
	d.drop(m, true)
}

func (d *Deliverer) lost(_ context.Context, _ *kgo.Client, m map[string][]int32) {
	<-d.ready
	d.drop(m, false)
}

func (d *Deliverer) drop(m map[string][]int32, commit bool) {
	d.watch.Released(m)
	parts := partitionsOf(m, d.cfg.topics)
	var ws []*worker
	d.mu.Lock()
	for _, p := range parts {
		if w := d.workers[p]; w != nil {
			ws = append(ws, w)
		}
	}
	d.mu.Unlock()
	if len(ws) > 0 {
		d.cfg.log.Info("deliverer: partitions released", "partitions", parts, "commit", commit)
	}
	d.release(ws, commit)
}

// catchUp tells each worker where retries[i] ends now and where this member
// starts reading it, retrying until Kafka answers or the worker stops.
func (d *Deliverer) catchUp(ws []*worker) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		// Stop asking once every worker has stopped.
		for _, w := range ws {
			<-w.done
		}
		cancel()
	}()
	for backoff := 100 * time.Millisecond; ctx.Err() == nil; backoff = min(2*backoff, 5*time.Second) {
		ends, pos, err := d.retriesPositions(ctx)
		if err == nil {
			for _, w := range ws {
				// No such retries partition (counts differ) reads as
				// end 0: nothing to wait for.
				w.post(evCatchUp{end: ends[w.part], pos: pos[w.part]})
			}
			return
		}
		d.cfg.log.Warn("deliverer: reading retries end offsets", "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
	}
}

// retriesPositions returns per retries partition the end offset and the
// offset this group reads from (committed, else the log start).
func (d *Deliverer) retriesPositions(ctx context.Context) (ends, pos map[int32]int64, err error) {
	t := d.cfg.topics.Retries
	le, err := d.adm.ListEndOffsets(ctx, t)
	if err == nil {
		err = le.Error()
	}
	if err != nil {
		return nil, nil, fmt.Errorf("end offsets: %w", err)
	}
	ls, err := d.adm.ListStartOffsets(ctx, t)
	if err == nil {
		err = ls.Error()
	}
	if err != nil {
		return nil, nil, fmt.Errorf("start offsets: %w", err)
	}
	co, err := d.adm.FetchOffsetsForTopics(ctx, d.cfg.group, t)
	if err == nil {
		err = co.Error()
	}
	if err != nil {
		return nil, nil, fmt.Errorf("committed offsets: %w", err)
	}
	ends, pos = map[int32]int64{}, map[int32]int64{}
	le.Each(func(o kadm.ListedOffset) { ends[o.Partition] = o.Offset })
	ls.Each(func(o kadm.ListedOffset) { pos[o.Partition] = o.Offset })
	for p, o := range co[t] {
		if o.At >= 0 && o.At > pos[p] {
			pos[p] = o.At
		}
	}
	return ends, pos, nil
}

func (d *Deliverer) commitLoop(ctx context.Context) {
	t := time.NewTicker(d.cfg.commitEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		d.mu.Lock()
		ws := make([]*worker, 0, len(d.workers))
		for _, w := range d.workers {
			ws = append(ws, w)
		}
		d.mu.Unlock()
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		d.commit(cctx, ws)
		cancel()
	}
}

// commit commits, for each worker, the lowest unfinished offset of its
// deliveries and retries partitions when it moved.
func (d *Deliverer) commit(ctx context.Context, ws []*worker) {
	d.commitMu.Lock()
	defer d.commitMu.Unlock()
	offsets := map[string]map[int32]kgo.EpochOffset{}
	type pending struct {
		t   *tracker
		off int64
	}
	var todo []pending
	add := func(topicName string, p int32, t *tracker, w *worker) {
		w.tmu.Lock()
		off, ok := t.commitPoint()
		w.tmu.Unlock()
		if !ok || off <= t.committed {
			return
		}
		if offsets[topicName] == nil {
			offsets[topicName] = map[int32]kgo.EpochOffset{}
		}
		offsets[topicName][p] = kgo.EpochOffset{Epoch: -1, Offset: off}
		todo = append(todo, pending{t, off})
	}
	for _, w := range ws {
		add(d.cfg.topics.Deliveries, w.part, w.live, w)
		add(d.cfg.topics.Retries, w.part, w.retries, w)
	}
	if len(todo) == 0 {
		return
	}
	var cerr error
	d.client.CommitOffsetsSync(ctx, offsets, func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
		if err != nil {
			cerr = err
			return
		}
		for _, t := range resp.Topics {
			for _, p := range t.Partitions {
				if e := kerr.ErrorForCode(p.ErrorCode); e != nil && cerr == nil {
					cerr = fmt.Errorf("%s/%d: %w", t.Topic, p.Partition, e)
				}
			}
		}
	})
	if cerr != nil {
		d.cfg.log.Warn("deliverer: commit", "err", cerr)
		return
	}
	for _, p := range todo {
		p.t.committed = p.off
	}
	d.watch.Committed()
}
