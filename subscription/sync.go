package subscription

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

const (
	// rebuildTTL is how long a rebuilder that died blocks the next one.
	rebuildTTL = 15 * time.Second
	// revalidateEvery bounds how stale the in-process cache of a process
	// that never calls Refresh can be when pub/sub notifications are lost.
	revalidateEvery = time.Second
	applyChunk      = 1000
)

var errRebuildLost = errors.New("subscription: lost the rebuild lock (redis flushed or lock expired)")

// Run is the store's background worker; every process that reads
// endpoints runs it under its supervisor. Until ctx ends it:
//
//   - rebuilds Redis from the endpoints topic when the generation marker is
//     missing (new or flushed Redis). One process does it, under a lock in
//     Redis renewed while it works; it reads the topic from the start up to
//     the end offsets it found, applying every record (last record per id
//     wins, tombstones delete), and sets the marker only when done. Readers
//     everywhere wait until then.
//   - tails the topic with a non-group consumer from the offsets recorded
//     in Redis (the rebuild records where it stopped, tailers move them
//     forward) and applies every record, idempotently by offset. That
//     repairs Redis when a writer died between Kafka's ack and its Redis
//     write, and notices a FLUSHALL within a second.
//   - revalidates the in-process cache every second and on each change
//     notification (Redis pub/sub).
//
// Kafka or Redis failures are logged and retried; Run returns nil when ctx
// ends.
func (s *Store) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	wg.Go(func() { s.watch(ctx) })
	defer wg.Wait()
	delay := 100 * time.Millisecond
	for ctx.Err() == nil {
		err := s.syncOnce(ctx)
		if ctx.Err() != nil {
			break
		}
		if err == nil {
			delay = 100 * time.Millisecond
			continue
		}
		s.cfg.log.Warn("endpoint store: syncing redis with the endpoints topic failed; retrying",
			"topic", s.topic, "err", err, "retry_in", delay)
		_ = sleep(ctx, delay)
		delay = min(delay*2, 5*time.Second)
	}
	return nil
}

// span is a partition's [start, end) offsets.
type span struct{ start, end int64 }

// syncOnce rebuilds if needed and tails until the generation changes or
// something fails.
func (s *Store) syncOnce(ctx context.Context) error {
	var gen *redis.StringCmd
	var recorded *redis.MapStringStringCmd
	if _, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		gen = p.Get(ctx, s.keys.generation)
		recorded = p.HGetAll(ctx, s.keys.offsets)
		return nil
	}); err != nil && !errors.Is(err, redis.Nil) {
		return redisErr(err)
	}
	spans, err := s.spans(ctx)
	if err != nil {
		return err
	}
	if gen.Val() == "" {
		token := randomToken()
		ok, err := s.rdb.SetNX(ctx, s.keys.rebuildLock, token, rebuildTTL).Result()
		if err != nil {
			return redisErr(err)
		}
		if !ok { // another process is rebuilding; look again shortly
			return sleep(ctx, 100*time.Millisecond)
		}
		return s.rebuild(ctx, token, spans)
	}
	start := map[int32]kgo.Offset{}
	pos := map[int32]int64{}
	for p, sp := range spans {
		start[p] = kgo.NewOffset().AtStart()
		if o, err := strconv.ParseInt(recorded.Val()[strconv.Itoa(int(p))], 10, 64); err == nil && o >= sp.start {
			start[p] = kgo.NewOffset().At(o)
			pos[p] = o
		}
	}
	cl, err := s.consumer(start)
	if err != nil {
		return err
	}
	defer cl.Close()
	return s.tail(ctx, cl, gen.Val(), pos)
}

// spans lists the endpoints topic's partitions with their start and end
// offsets.
func (s *Store) spans(ctx context.Context) (map[int32]span, error) {
	adm := kadm.NewClient(s.kafka)
	ends, err := adm.ListEndOffsets(ctx, s.topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("%w: kafka: end offsets of %s: %w", ErrUnavailable, s.topic, err)
	}
	starts, err := adm.ListStartOffsets(ctx, s.topic)
	if err == nil {
		err = starts.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("%w: kafka: start offsets of %s: %w", ErrUnavailable, s.topic, err)
	}
	out := map[int32]span{}
	ends.Each(func(o kadm.ListedOffset) { out[o.Partition] = span{end: o.Offset} })
	starts.Each(func(o kadm.ListedOffset) {
		if sp, ok := out[o.Partition]; ok {
			sp.start = o.Offset
			out[o.Partition] = sp
		}
	})
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: kafka: topic %s has no partitions", ErrUnavailable, s.topic)
	}
	return out, nil
}

// consumer returns a direct (non-group) consumer of the endpoints topic,
// connected like s.kafka: its client-level options (brokers, TLS, SASL,
// hooks) without its producer, consumer or group ones. It keeps control
// records so that a transaction marker at a partition's end still moves
// the position past it.
func (s *Store) consumer(start map[int32]kgo.Offset) (*kgo.Client, error) {
	var opts []kgo.Opt
	for _, o := range s.kafka.Opts() {
		switch o.(type) {
		case kgo.ProducerOpt, kgo.ConsumerOpt, kgo.GroupOpt:
			continue
		}
		opts = append(opts, o)
	}
	opts = append(opts,
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{s.topic: start}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.KeepControlRecords(),
	)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("subscription: endpoints consumer: %w", err)
	}
	return cl, nil
}

// rebuild fills Redis from the whole topic while holding the rebuild lock,
// marks it complete, then keeps tailing.
func (s *Store) rebuild(ctx context.Context, token string, spans map[int32]span) error {
	began := time.Now()
	s.cfg.log.Info("endpoint store: rebuilding the redis cache from the endpoints topic", "topic", s.topic)
	start := map[int32]kgo.Offset{}
	for p := range spans {
		start[p] = kgo.NewOffset().AtStart()
	}
	cl, err := s.consumer(start)
	if err != nil {
		return err
	}
	defer cl.Close()
	pos, n, err := s.readToEnd(ctx, cl, token, spans)
	if err != nil {
		c, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		_ = unlockScript.Run(c, s.rdb, []string{s.keys.rebuildLock}, token).Err()
		return err
	}
	gen := randomToken()
	args := offsetArgs([]any{s.keys.base, token, gen}, pos)
	ok, err := finishScript.Run(ctx, s.rdb, []string{s.keys.generation}, args...).Int()
	if err != nil {
		return redisErr(err)
	}
	if ok == 0 {
		return errRebuildLost
	}
	s.cfg.log.Info("endpoint store: redis cache rebuilt", "topic", s.topic, "records", n, "took", time.Since(began).Round(time.Millisecond))
	return s.tail(ctx, cl, gen, pos)
}

// readToEnd applies records until every partition reached the end offset
// in spans, renewing the rebuild lock meanwhile.
func (s *Store) readToEnd(ctx context.Context, cl *kgo.Client, token string, spans map[int32]span) (map[int32]int64, int, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel(nil) // stops holdLock before wg.Wait
	wg.Go(func() { s.holdLock(ctx, token, cancel) })

	pos := map[int32]int64{}
	for p, sp := range spans {
		pos[p] = sp.start
	}
	caughtUp := func() bool {
		for p, sp := range spans {
			if pos[p] < sp.end {
				return false
			}
		}
		return true
	}
	total := 0
	for !caughtUp() {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return nil, 0, context.Cause(ctx)
		}
		if err := fetchErr(fs); err != nil {
			return nil, 0, err
		}
		n, err := s.applyFetches(ctx, fs, pos)
		if err != nil {
			return nil, 0, err
		}
		total += n
	}
	return pos, total, nil
}

// holdLock renews the rebuild lock until ctx ends, and cancels ctx when the
// lock is gone (expired, or FLUSHALL), as the rebuild would then be
// marked complete over a half-built cache.
func (s *Store) holdLock(ctx context.Context, token string, lost context.CancelCauseFunc) {
	t := time.NewTicker(rebuildTTL / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		n, err := renewScript.Run(ctx, s.rdb, []string{s.keys.rebuildLock}, token, rebuildTTL.Milliseconds()).Int()
		if err == nil && n == 0 {
			lost(errRebuildLost)
			return
		}
		// A Redis error leaves the outcome open: the next renewal, or the
		// final check in finishScript, tells.
	}
}

// tail applies records as they come until the generation marker changes
// (FLUSHALL: the caller starts over with a rebuild) or ctx ends.
func (s *Store) tail(ctx context.Context, cl *kgo.Client, gen string, pos map[int32]int64) error {
	for {
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		fs := cl.PollFetches(pctx)
		cancel()
		if ctx.Err() != nil {
			return nil
		}
		if err := fetchErr(fs); err != nil {
			return err
		}
		n, err := s.applyFetches(ctx, fs, pos)
		if err != nil {
			return err
		}
		if n > 0 {
			s.cfg.log.Debug("endpoint store: applied records from the endpoints topic", "records", n)
		}
		same, err := offsetsScript.Run(ctx, s.rdb, []string{s.keys.offsets}, offsetArgs([]any{s.keys.base, gen}, pos)...).Int()
		if err != nil {
			return redisErr(err)
		}
		if same == 0 {
			s.cfg.log.Warn("endpoint store: redis generation marker changed (flushed?); rebuilding")
			return nil
		}
	}
}

func fetchErr(fs kgo.Fetches) error {
	var errs []error
	fs.EachError(func(t string, p int32, err error) {
		if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
			return
		}
		errs = append(errs, fmt.Errorf("fetch %s[%d]: %w", t, p, err))
	})
	if len(errs) > 0 {
		return fmt.Errorf("%w: kafka: %w", ErrUnavailable, errors.Join(errs...))
	}
	return nil
}

// applyFetches applies the records of fs (the last one per id of the
// batch) and advances pos past every record, control records included. A
// record that cannot be decoded is logged and skipped: it must not stop
// the cache from following the topic.
func (s *Store) applyFetches(ctx context.Context, fs kgo.Fetches, pos map[int32]int64) (int, error) {
	var batch []change
	at := map[string]int{}
	fs.EachRecord(func(r *kgo.Record) {
		pos[r.Partition] = r.Offset + 1
		if r.Attrs.IsControl() {
			return
		}
		c, err := parseRecord(r)
		if err != nil {
			s.cfg.log.Error("endpoint store: skipping bad record in the endpoints topic",
				"partition", r.Partition, "offset", r.Offset, "err", err)
			return
		}
		if i, ok := at[c.id]; ok {
			batch[i] = c
			return
		}
		at[c.id] = len(batch)
		batch = append(batch, c)
	})
	for i := 0; i < len(batch); i += applyChunk {
		if _, err := s.apply(ctx, batch[i:min(i+applyChunk, len(batch))]); err != nil {
			return 0, err
		}
	}
	return len(batch), nil
}

var errBadRecord = errors.New("subscription: bad endpoints record")

func parseRecord(r *kgo.Record) (change, error) {
	id := string(r.Key)
	if id == "" {
		return change{}, fmt.Errorf("%w: no key", errBadRecord)
	}
	c := change{id: id, offset: r.Offset}
	if r.Value == nil {
		return c, nil
	}
	e, err := decode(r.Value)
	if err != nil {
		return change{}, fmt.Errorf("%w: %w", errBadRecord, err)
	}
	if e.ID != id || e.Tenant == "" {
		return change{}, fmt.Errorf("%w: value id %q or tenant %q does not fit key %q", errBadRecord, e.ID, e.Tenant, id)
	}
	c.value, c.ep = r.Value, e
	return c, nil
}

// watch revalidates the in-process cache on every change notification and
// at least every revalidateEvery.
func (s *Store) watch(ctx context.Context) {
	sub := s.rdb.Subscribe(ctx, s.keys.changes)
	defer sub.Close()
	msgs := sub.Channel()
	t := time.NewTicker(revalidateEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-msgs:
		drain:
			for {
				select {
				case <-msgs:
				default:
					break drain
				}
			}
		case <-t.C:
		}
		if err := s.Refresh(ctx); err != nil && ctx.Err() == nil {
			s.cfg.log.Debug("endpoint store: revalidating the in-process cache failed", "err", err)
		}
	}
}
