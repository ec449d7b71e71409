package recovery

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/segmentio/encoding/json"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hookstream/hookstream/envelope"
	"github.com/hookstream/hookstream/internal/record"
	"github.com/hookstream/hookstream/producer"
	"github.com/hookstream/hookstream/subscription"
	"github.com/hookstream/hookstream/topic"
)

// Group is the consumer group whose member holding the jobs topic's one
// partition runs the jobs.
const Group = "hookstream-jobs"

// Endpoints is what jobs need of the endpoint store.
type Endpoints interface {
	// Get returns the tenant's endpoint, or an error wrapping
	// subscription.ErrNotFound once it is deleted.
	Get(ctx context.Context, tenant, id string) (*subscription.Endpoint, error)
}

// Publisher publishes job.completed (*producer.Producer).
type Publisher interface {
	Publish(ctx context.Context, tenant, eventType string, data []byte, opts ...producer.PublishOption) (string, error)
}

// Config is what a Service is built from.
type Config struct {
	Topics topic.Names
	// ClientOpts start every Kafka client of the service: seed brokers,
	// tracing hooks.
	ClientOpts []kgo.Opt
	// GroupOpts are the jobs group's timeouts and static instance id.
	GroupOpts []kgo.Opt
	Endpoints Endpoints
	Publisher Publisher // job.completed; nil publishes nothing
	Logger    *slog.Logger
	// Step is how often a job writes (default 200ms): also the longest a
	// cancel waits.
	Step time.Duration
	// MaxLead bounds how many of a job's delivery records may wait in a
	// deliveries partition beyond the deliverer group's committed offset
	// (0: no bound): a job whose endpoint delivers slower than the job's
	// rate waits instead of filling the partition that other endpoints'
	// live deliveries share.
	MaxLead int64
	// KeyTTL is how long an idempotency key names its job (default
	// DefaultKeyTTL).
	KeyTTL time.Duration
	// Retention is how long a finished job is kept (default
	// DefaultRetention); then the runner writes tombstones for its
	// records and compaction drops them.
	Retention time.Duration
}

// Service keeps every job of the jobs topic in memory, accepts new jobs and
// cancels, and, while this process leads the jobs group, runs them.
type Service struct {
	cfg Config
	log *slog.Logger
	w   *kgo.Client // plain producer and admin client

	mu      sync.Mutex
	jobs    map[string]*Job
	plans   map[string]map[int][]Item
	cancels map[string]bool
	idem    map[string]string // tenant NUL key -> job id
	syncs   map[string]chan struct{}
	loaded  chan struct{}

	termMu   sync.Mutex
	stopTerm func()
}

// New returns a Service; Run reads the jobs topic and takes part in the
// jobs group.
func New(cfg Config) (*Service, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Step <= 0 {
		cfg.Step = 200 * time.Millisecond
	}
	if cfg.KeyTTL <= 0 {
		cfg.KeyTTL = DefaultKeyTTL
	}
	if cfg.Retention <= 0 {
		cfg.Retention = DefaultRetention
	}
	w, err := kgo.NewClient(append(cfg.ClientOpts[:len(cfg.ClientOpts):len(cfg.ClientOpts)], kgo.ProducerLinger(0))...)
	if err != nil {
		return nil, fmt.Errorf("recovery: kafka client: %w", err)
	}
	return &Service{
		cfg: cfg, log: cfg.Logger, w: w,
		jobs: map[string]*Job{}, plans: map[string]map[int][]Item{}, cancels: map[string]bool{},
		idem: map[string]string{}, syncs: map[string]chan struct{}{}, loaded: make(chan struct{}),
	}, nil
}

// Close releases the service's clients; call it after Run returned.
func (s *Service) Close() { s.w.Close() }

// Run reads the jobs topic into memory and leads the jobs group when
// Kafka gives it the partition, until ctx ends.
func (s *Service) Run(ctx context.Context) error {
	view, err := kgo.NewClient(append(s.cfg.ClientOpts[:len(s.cfg.ClientOpts):len(s.cfg.ClientOpts)],
		kgo.ConsumeTopics(s.cfg.Topics.Jobs),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()))...)
	if err != nil {
		return fmt.Errorf("recovery: kafka client: %w", err)
	}
	defer view.Close()
	errs := make(chan error, 2)
	go func() { errs <- s.readView(ctx, view) }()
	go func() {
		select {
		case <-s.loaded:
		case <-ctx.Done():
			errs <- nil
			return
		}
		errs <- s.joinGroup(ctx)
	}()
	err = <-errs
	if err2 := <-errs; err == nil {
		err = err2
	}
	return err
}

// Loaded is closed once the view has read the jobs topic to its end.
func (s *Service) Loaded() <-chan struct{} { return s.loaded }

func (s *Service) readView(ctx context.Context, cl *kgo.Client) error {
	go func() {
		// The view is loaded once it read a marker written after start.
		for ctx.Err() == nil {
			sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			err := s.sync(sctx)
			cancel()
			if err == nil {
				close(s.loaded)
				return
			}
			s.log.Warn("recovery: jobs topic not read yet", "err", err)
		}
	}()
	for {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return nil
		}
		fs.EachError(func(t string, p int32, err error) {
			s.log.Warn("recovery: fetch jobs", "topic", t, "partition", p, "err", err)
		})
		fs.EachRecord(s.apply)
	}
}

const syncKey = "sync"

// sync writes a marker to the jobs topic and waits until the view read
// it: everything written before is then in memory.
func (s *Service) sync(ctx context.Context) error {
	var b [8]byte
	_, _ = rand.Read(b[:])
	token := hex.EncodeToString(b[:])
	ch := make(chan struct{})
	s.mu.Lock()
	s.syncs[token] = ch
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.syncs, token)
		s.mu.Unlock()
	}()
	if err := s.w.ProduceSync(ctx, &kgo.Record{Topic: s.cfg.Topics.Jobs, Key: []byte(syncKey), Value: []byte(token)}).FirstErr(); err != nil {
		return fmt.Errorf("recovery: write marker: %w", err)
	}
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// apply folds one record of the jobs topic into memory.
func (s *Service) apply(r *kgo.Record) {
	key := string(r.Key)
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case key == syncKey:
		if ch, ok := s.syncs[string(r.Value)]; ok {
			close(ch)
			delete(s.syncs, string(r.Value))
		}
	case strings.HasSuffix(key, "/cancel"):
		if r.Value != nil {
			s.cancels[strings.TrimSuffix(key, "/cancel")] = true
		}
	case strings.Contains(key, "/plan/"):
		id, n, _ := strings.Cut(key, "/plan/")
		i, err := strconv.Atoi(n)
		if err != nil || r.Value == nil {
			return
		}
		if j := s.jobs[id]; j != nil && j.Finished() {
			return
		}
		var items []Item
		if err := json.Unmarshal(r.Value, &items); err != nil {
			s.log.Warn("recovery: bad plan record", "key", key, "err", err)
			return
		}
		if s.plans[id] == nil {
			s.plans[id] = map[int][]Item{}
		}
		s.plans[id][i] = items
	default:
		if r.Value == nil {
			s.forget(key)
			return
		}
		var j Job
		if err := json.Unmarshal(r.Value, &j); err != nil || j.ID != key {
			s.log.Warn("recovery: bad job record", "key", key, "err", err)
			return
		}
		s.put(&j)
	}
}

// forget drops a job whose tombstone was read. Called with s.mu held.
func (s *Service) forget(id string) {
	if j := s.jobs[id]; j != nil && j.IdempotencyKey != "" {
		k := j.Tenant + "\x00" + j.IdempotencyKey
		if s.idem[k] == id {
			delete(s.idem, k)
		}
	}
	delete(s.jobs, id)
	delete(s.plans, id)
	delete(s.cancels, id)
}

// put keeps j unless a later (or, for a repeated idempotency key, an
// earlier) state of it is known. Called with s.mu held.
func (s *Service) put(j *Job) {
	if old := s.jobs[j.ID]; old != nil && old.Seq >= j.Seq {
		return
	}
	s.jobs[j.ID] = j
	if j.IdempotencyKey != "" {
		// A key names its newest job: after KeyTTL it may start another.
		k := j.Tenant + "\x00" + j.IdempotencyKey
		if cur := s.jobs[s.idem[k]]; cur == nil || !cur.CreatedAt.After(j.CreatedAt) {
			s.idem[k] = j.ID
		}
	}
	if j.Finished() {
		delete(s.plans, j.ID)
	}
}

// Submit writes a new job (its plan first) and returns it; a job the
// tenant already submitted with the same idempotency key is returned
// instead, with existing true.
func (s *Service) Submit(ctx context.Context, j Job, plan []Item) (out Job, existing bool, err error) {
	select {
	case <-s.loaded:
	case <-ctx.Done():
		return Job{}, false, fmt.Errorf("recovery: jobs topic not read yet: %w", ctx.Err())
	}
	prev := ""
	if old, ok := s.keyed(j.Tenant, j.IdempotencyKey); ok {
		if time.Since(old.CreatedAt) >= s.cfg.KeyTTL {
			prev = old.ID
		} else if err := sameRequest(&old, &j); err != nil {
			return Job{}, false, err
		} else {
			return old, true, nil
		}
	}
	j.ID = newID(j.Tenant, j.IdempotencyKey, prev)
	j.State, j.Seq, j.CreatedAt = StateQueued, 0, time.Now().UTC()
	if j.Rate <= 0 {
		j.Rate = DefaultRate
	}
	if plan != nil {
		j.Total = int64(len(plan))
	}
	var recs []*kgo.Record
	for i := 0; i < len(plan); i += planChunk {
		v, err := json.Marshal(plan[i:min(i+planChunk, len(plan))])
		if err != nil {
			return Job{}, false, fmt.Errorf("recovery: encode plan: %w", err)
		}
		recs = append(recs, &kgo.Record{Topic: s.cfg.Topics.Jobs, Key: []byte(j.ID + "/plan/" + strconv.Itoa(j.PlanChunks)), Value: v})
		j.PlanChunks++
	}
	rec, err := s.stateRecord(&j)
	if err != nil {
		return Job{}, false, err
	}
	// One partition and one producer: the plan is read before the state.
	if err := s.w.ProduceSync(ctx, append(recs, rec)...).FirstErr(); err != nil {
		return Job{}, false, fmt.Errorf("recovery: write job: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if old := s.jobs[j.ID]; old != nil {
		// Read back already, or the same idempotency key accepted
		// concurrently elsewhere.
		existing := !old.CreatedAt.Equal(j.CreatedAt)
		if existing {
			if err := sameRequest(old, &j); err != nil {
				return Job{}, false, err
			}
		}
		return *old, existing, nil
	}
	for i := 0; i < len(recs); i++ {
		if s.plans[j.ID] == nil {
			s.plans[j.ID] = map[int][]Item{}
		}
		s.plans[j.ID][i] = plan[i*planChunk : min((i+1)*planChunk, len(plan))]
	}
	s.put(&j)
	return j, false, nil
}

// keyed returns the newest job the tenant started with key.
// Check returns the error Submit would return for j's idempotency key
// (a *KeyReusedError) without writing anything, so that a caller can
// refuse a request before acting on it.
func (s *Service) Check(j Job) error {
	old, ok := s.keyed(j.Tenant, j.IdempotencyKey)
	if !ok || time.Since(old.CreatedAt) >= s.cfg.KeyTTL {
		return nil
	}
	return sameRequest(&old, &j)
}

func (s *Service) keyed(tenant, key string) (Job, bool) {
	if key == "" {
		return Job{}, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	j := s.jobs[s.idem[tenant+"\x00"+key]]
	if j == nil {
		return Job{}, false
	}
	return *j, true
}

func (s *Service) stateRecord(j *Job) (*kgo.Record, error) {
	v, err := json.Marshal(j)
	if err != nil {
		return nil, fmt.Errorf("recovery: encode job: %w", err)
	}
	return &kgo.Record{Topic: s.cfg.Topics.Jobs, Key: []byte(j.ID), Value: v}, nil
}

// Get returns the tenant's job.
func (s *Service) Get(tenant, id string) (Job, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	j := s.jobs[id]
	if j == nil || j.Tenant != tenant {
		return Job{}, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	return *j, nil
}

// List returns up to limit of the tenant's jobs, newest first, after the
// job named by cursor, and the cursor of the next page ("" at the end).
// ErrBadCursor when the cursor names none of the tenant's jobs.
func (s *Service) List(tenant, cursor string, limit int) ([]Job, string, error) {
	s.mu.Lock()
	var all []Job
	for _, j := range s.jobs {
		if j.Tenant == tenant {
			all = append(all, *j)
		}
	}
	s.mu.Unlock()
	sort.Slice(all, func(a, b int) bool {
		if !all[a].CreatedAt.Equal(all[b].CreatedAt) {
			return all[a].CreatedAt.After(all[b].CreatedAt)
		}
		return all[a].ID > all[b].ID
	})
	start := 0
	if cursor != "" {
		start = -1
		for i, j := range all {
			if j.ID == cursor {
				start = i + 1
				break
			}
		}
		if start < 0 {
			return nil, "", ErrBadCursor
		}
	}
	end := min(start+limit, len(all))
	page := all[start:end]
	if end < len(all) && len(page) > 0 {
		return page, page[len(page)-1].ID, nil
	}
	return page, "", nil
}

// Cancel asks the runner to stop the tenant's job; it ends canceled
// within a step. ErrFinished if it already ended.
func (s *Service) Cancel(ctx context.Context, tenant, id string) (Job, error) {
	j, err := s.Get(tenant, id)
	if err != nil {
		return Job{}, err
	}
	if j.Finished() {
		return j, ErrFinished
	}
	v, _ := json.Marshal(map[string]time.Time{"at": time.Now().UTC()})
	if err := s.w.ProduceSync(ctx, &kgo.Record{Topic: s.cfg.Topics.Jobs, Key: []byte(id + "/cancel"), Value: v}).FirstErr(); err != nil {
		return Job{}, fmt.Errorf("recovery: write cancel: %w", err)
	}
	s.mu.Lock()
	s.cancels[id] = true
	s.mu.Unlock()
	return j, nil
}

func (s *Service) canceled(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cancels[id]
}

// plan returns the job's plan items, or false while some chunk is unread.
func (s *Service) plan(j *Job) ([]Item, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	chunks := s.plans[j.ID]
	if len(chunks) < j.PlanChunks {
		return nil, false
	}
	var out []Item
	for i := range j.PlanChunks {
		out = append(out, chunks[i]...)
	}
	return out, true
}

// unfinished lists the jobs to run.
func (s *Service) unfinished() []Job {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Job
	for _, j := range s.jobs {
		if !j.Finished() {
			out = append(out, *j)
		}
	}
	sort.Slice(out, func(a, b int) bool { return out[a].CreatedAt.Before(out[b].CreatedAt) })
	return out
}

// joinGroup takes part in the jobs group: the member given the jobs
// topic's partition runs the jobs until it loses it.
func (s *Service) joinGroup(ctx context.Context) error {
	onAssign := func(_ context.Context, _ *kgo.Client, m map[string][]int32) {
		if len(m[s.cfg.Topics.Jobs]) > 0 {
			s.startTerm(ctx)
		}
	}
	onRevoke := func(_ context.Context, _ *kgo.Client, m map[string][]int32) {
		if len(m[s.cfg.Topics.Jobs]) > 0 {
			s.endTerm()
		}
	}
	opts := append(s.cfg.ClientOpts[:len(s.cfg.ClientOpts):len(s.cfg.ClientOpts)], s.cfg.GroupOpts...)
	cl, err := kgo.NewClient(append(opts,
		kgo.ConsumerGroup(Group),
		kgo.ConsumeTopics(s.cfg.Topics.Jobs),
		// The group decides who runs jobs, nothing more: the view
		// reads the records.
		kgo.ConsumeResetOffset(kgo.NewOffset().AtEnd()),
		kgo.DisableAutoCommit(),
		kgo.OnPartitionsAssigned(onAssign),
		kgo.OnPartitionsRevoked(onRevoke),
		kgo.OnPartitionsLost(onRevoke),
	)...)
	if err != nil {
		return fmt.Errorf("recovery: group client: %w", err)
	}
	defer func() {
		s.endTerm()
		cl.Close()
	}()
	for {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil || fs.IsClientClosed() {
			return nil
		}
	}
}

func (s *Service) startTerm(parent context.Context) {
	s.termMu.Lock()
	defer s.termMu.Unlock()
	if s.stopTerm != nil {
		return
	}
	ctx, cancel := context.WithCancel(parent)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := s.lead(ctx); err != nil && ctx.Err() == nil {
			s.log.Error("recovery: job runner stopped", "err", err)
		}
	}()
	s.stopTerm = func() {
		cancel()
		<-done
	}
}

func (s *Service) endTerm() {
	s.termMu.Lock()
	defer s.termMu.Unlock()
	if s.stopTerm != nil {
		s.stopTerm()
		s.stopTerm = nil
	}
}

// TransactionalID is the jobs runner's transactional id for a topic
// prefix: fixed, so that a new runner fences the one before it and aborts
// the step it left open. It starts with "hookstream-producer-", the api's
// transactional id prefix, which its Kafka ACLs grant.
func TransactionalID(t topic.Names) string { return "hookstream-producer-jobs-" + t.Jobs }

// lead runs every unfinished job, and each new one, until ctx ends.
func (s *Service) lead(ctx context.Context) error {
	txn, err := kgo.NewClient(append(s.cfg.ClientOpts[:len(s.cfg.ClientOpts):len(s.cfg.ClientOpts)],
		kgo.TransactionalID(TransactionalID(s.cfg.Topics)),
		kgo.TransactionTimeout(10*time.Second),
		kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)))...)
	if err != nil {
		return fmt.Errorf("recovery: transactional client: %w", err)
	}
	defer txn.Close()
	// Taking the transactional id first fences a previous runner and
	// aborts the step it left open, which would otherwise hold back the
	// read_committed view (and the sync below) until its timeout.
	for {
		if _, _, err := txn.ProducerID(ctx); err == nil {
			break
		} else if ctx.Err() != nil {
			return nil
		} else {
			s.log.Warn("recovery: transactional id", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
	}
	// Every state written before this term is in memory before any job
	// resumes from it.
	for {
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := s.sync(sctx)
		cancel()
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return nil
		}
		s.log.Warn("recovery: catching up with the jobs topic", "err", err)
	}
	s.log.Info("recovery: running jobs")
	r := &runner{s: s, txn: txn}
	running := map[string]bool{}
	ended := make(chan string)
	var wg sync.WaitGroup
	defer wg.Wait()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	sweepEvery := min(time.Minute, max(s.cfg.Retention/4, 100*time.Millisecond))
	var swept time.Time
	for {
		if time.Since(swept) >= sweepEvery {
			if err := s.expire(ctx, time.Now()); err != nil && ctx.Err() == nil {
				s.log.Warn("recovery: removing expired jobs", "err", err)
			}
			swept = time.Now()
		}
		for _, j := range s.unfinished() {
			if running[j.ID] {
				continue
			}
			running[j.ID] = true
			wg.Add(1)
			go func() {
				defer wg.Done()
				r.run(ctx, j)
				select {
				case ended <- j.ID:
				case <-ctx.Done():
				}
			}()
		}
		select {
		case <-ctx.Done():
			return nil
		case id := <-ended:
			delete(running, id)
		case <-tick.C:
		}
	}
}

// expire writes tombstones for every record of each job that finished
// more than Retention before now, the job's own record last: a runner
// that stops half-way leaves the job listed, and the next sweep writes
// them all again, which is harmless.
func (s *Service) expire(ctx context.Context, now time.Time) error {
	s.mu.Lock()
	var recs []*kgo.Record
	for id, j := range s.jobs {
		if !j.Finished() || now.Sub(j.FinishedAt) < s.cfg.Retention {
			continue
		}
		for n := range j.PlanChunks {
			recs = append(recs, &kgo.Record{Topic: s.cfg.Topics.Jobs, Key: []byte(id + "/plan/" + strconv.Itoa(n))})
		}
		recs = append(recs, &kgo.Record{Topic: s.cfg.Topics.Jobs, Key: []byte(id + "/cancel")},
			&kgo.Record{Topic: s.cfg.Topics.Jobs, Key: []byte(id)})
	}
	s.mu.Unlock()
	if len(recs) == 0 {
		return nil
	}
	// One partition, one producer, in order: each job's record after its
	// plan's and cancel's.
	if err := s.w.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		return fmt.Errorf("recovery: write tombstones: %w", err)
	}
	return nil
}

// errFail ends a job failed with its message as the reason.
type errFail struct{ reason string }

func (e errFail) Error() string { return e.reason }

var errNotReady = errors.New("recovery: plan not read yet")

// DryRun counts the events a replay with f would send and returns the
// first sampleSize of them.
func (s *Service) DryRun(ctx context.Context, f Filter, sampleSize int) (int64, []envelope.Event, error) {
	start, end, err := Window(ctx, s.w, s.cfg.Topics.Events, f.Since, f.Until)
	if err != nil {
		return 0, nil, err
	}
	return dryRun(ctx, s.cfg.ClientOpts, s.cfg.Topics.Events, start, end, f, sampleSize)
}

// SendTest writes e as a delivery to the tenant's endpoint alone, with
// trigger test: the deliverer sends it like any other.
func (s *Service) SendTest(ctx context.Context, tenant, endpointID string, e envelope.Event) error {
	body, err := e.Encode()
	if err != nil {
		return fmt.Errorf("recovery: encode test event: %w", err)
	}
	d := record.Delivery{EndpointID: endpointID, Tenant: tenant, EventID: e.ID, EventType: e.Event, Body: body, Trigger: TriggerTest}
	if err := s.w.ProduceSync(ctx, d.Record(s.cfg.Topics.Deliveries)).FirstErr(); err != nil {
		return fmt.Errorf("recovery: write test delivery: %w", err)
	}
	return nil
}

// TriggerTest is the trigger of a test event's delivery.
const TriggerTest = "test"
