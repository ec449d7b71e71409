package fanout_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/hookstream/hookstream/fanout"
	"github.com/hookstream/hookstream/internal/record"
	"github.com/hookstream/hookstream/internal/testenv"
	"github.com/hookstream/hookstream/producer"
	"github.com/hookstream/hookstream/schemas"
	"github.com/hookstream/hookstream/subscription"
	"github.com/hookstream/hookstream/topic"
)

func TestMain(m *testing.M) {
	// The producer writes traceparent/tracestate through the global
	// propagator; every test here wants them, so install it once.
	otel.SetTextMapPropagator(propagation.TraceContext{})
	os.Exit(m.Run())
}

const prefix = "hs."

var loadCatalog = sync.OnceValues(schemas.Load)

func catalog(t testing.TB) *schemas.Catalog {
	t.Helper()
	c, err := loadCatalog()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// rig is one Kafka and one Redis with Hookstream's topics, an endpoint store
// for the test's writes (as the API process would have) and a producer.
type rig struct {
	kafka   *testenv.Kafka
	redis   *testenv.Redis
	cluster *testenv.RedisCluster // set: stores and dedupe use this Redis Cluster instead
	names   topic.Names
	cat     *schemas.Catalog
	api     *subscription.Store
	pub     *producer.Producer
	raw     *kgo.Client
}

func newRig(t testing.TB, partitions int32) *rig {
	t.Helper()
	return newRigOn(t, partitions, false)
}

// newRigOn is newRig on a 3-master Redis Cluster when cluster is set.
func newRigOn(t testing.TB, partitions int32, cluster bool) *rig {
	t.Helper()
	k := testenv.StartKafka(t)
	r := &rig{
		kafka: k,
		names: k.CreateTopics(t, prefix, topic.Partitions{Events: partitions, Deliveries: partitions, Other: 1}),
		cat:   catalog(t),
		raw:   k.Client(t),
	}
	if cluster {
		r.cluster = testenv.StartRedisCluster(t, 3)
	} else {
		r.redis = testenv.StartRedis(t)
	}
	r.api = r.store(t)
	r.pub = producer.New(r.raw, r.cat, producer.WithTopicPrefix(prefix))
	return r
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// store returns a running endpoint store with its own clients, as another
// process would have.
func (r *rig) store(t testing.TB) *subscription.Store {
	t.Helper()
	rdb := r.rdb()
	t.Cleanup(func() { _ = rdb.Close() })
	s := subscription.NewStore(r.kafka.Client(t), rdb, r.cat,
		subscription.WithTopicPrefix(prefix), subscription.WithAllowPrivate(true), subscription.WithLogger(quiet))
	testenv.Run(t, s)
	return s
}

// bothRedis runs test, in parallel, on a rig with partitions on a single
// redis-server and on one with a 3-master Redis Cluster.
func bothRedis(t *testing.T, partitions int32, test func(t *testing.T, r *rig)) {
	for _, cluster := range []bool{false, true} {
		t.Run(map[bool]string{false: "single", true: "cluster"}[cluster], func(t *testing.T) {
			t.Parallel()
			test(t, newRigOn(t, partitions, cluster))
		})
	}
}

// rdb returns a new client of the rig's Redis (the caller closes it).
func (r *rig) rdb() redis.UniversalClient {
	if r.cluster != nil {
		return r.cluster.NewClient()
	}
	return redis.NewClient(&redis.Options{Addr: r.redis.Addr})
}

// flushAll empties the rig's Redis, every master of a cluster.
func (r *rig) flushAll(t testing.TB) {
	t.Helper()
	if r.cluster != nil {
		r.cluster.FlushAll(t)
		return
	}
	r.redis.FlushAll(t)
}

// groupOpts make a restarted or added member take over in about a second.
var groupOpts = []kgo.Opt{
	kgo.SessionTimeout(2 * time.Second),
	kgo.HeartbeatInterval(200 * time.Millisecond),
	kgo.RebalanceTimeout(3 * time.Second),
}

// running is one fanout started by start.
type running struct {
	stop func() error
}

// start runs a fanout matching through m (by default its own store) until
// stop or the end of the test.
func (r *rig) start(t testing.TB, m fanout.Matcher, opts ...fanout.Option) *running {
	t.Helper()
	if m == nil {
		m = r.store(t)
	}
	return r.startOn(t, r.names, fanout.Group, m, nil, opts...)
}

// startOn runs a fanout of group on the topics names, its client built
// with kextra as well.
func (r *rig) startOn(t testing.TB, names topic.Names, group string, m fanout.Matcher, kextra []kgo.Opt, opts ...fanout.Option) *running {
	t.Helper()
	kopts := append([]kgo.Opt{kgo.SeedBrokers(r.kafka.Addr)}, fanout.ClientOpts(names, group, fanout.TransactionalID())...)
	kopts = append(append(kopts, groupOpts...), kextra...)
	sess, err := kgo.NewGroupTransactSession(kopts...)
	if err != nil {
		t.Fatal(err)
	}
	rdb := r.rdb()
	opts = append([]fanout.Option{fanout.WithTopics(names), fanout.WithDedupe(rdb), fanout.WithLogger(quiet),
		fanout.WithRetryBackoff(20*time.Millisecond, 200*time.Millisecond)}, opts...)
	f := fanout.New(sess, m, r.cat, opts...)
	stopRun := testenv.Run(t, f)
	var once sync.Once
	var runErr error
	stop := func() error {
		once.Do(func() {
			runErr = stopRun()
			sess.Close()
			_ = rdb.Close()
		})
		return runErr
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("fanout Run: %v", err)
		}
	})
	return &running{stop: stop}
}

func ctxFor(t testing.TB, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// endpoint creates an endpoint of tenant subscribed to events.
func (r *rig) endpoint(t testing.TB, tenant string, events ...string) string {
	t.Helper()
	e, err := r.api.Create(ctxFor(t, 30*time.Second), tenant, subscription.EndpointInput{URL: "http://127.0.0.1:1/hook", Events: events})
	if err != nil {
		t.Fatalf("create endpoint %s %v: %v", tenant, events, err)
	}
	return e.ID
}

// example returns the catalog's example data of eventType.
func (r *rig) example(t testing.TB, eventType string) []byte {
	t.Helper()
	for _, ty := range r.cat.Types() {
		if ty.Name == eventType {
			return ty.Example
		}
	}
	t.Fatalf("no type %s in the catalog", eventType)
	return nil
}

// publish publishes one event with the producer and returns its id.
func (r *rig) publish(t testing.TB, ctx context.Context, tenant, eventType string, opts ...producer.PublishOption) string {
	t.Helper()
	id, err := r.pub.Publish(ctx, tenant, eventType, r.example(t, eventType), opts...)
	if err != nil {
		t.Fatalf("publish %s %s: %v", tenant, eventType, err)
	}
	return id
}

// produceRaw writes records as a non-Go client would, unvalidated.
func (r *rig) produceRaw(t testing.TB, recs ...*kgo.Record) {
	t.Helper()
	for _, rec := range recs {
		rec.Topic = r.names.Events
	}
	if err := r.raw.ProduceSync(ctxFor(t, 30*time.Second), recs...).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
}

// committed returns the sum of the group's committed offsets in the events
// topic: a measure of progress, not a count of events, as transaction
// markers take offsets too.
func (r *rig) committed(t testing.TB) int64 {
	t.Helper()
	var sum int64
	for _, o := range groupOffsets(t, r.raw, r.names.Events, fanout.Group) {
		sum += o
	}
	return sum
}

// groupOffsets returns group's committed offsets in topic, by partition
// (none before its first commit).
func groupOffsets(t testing.TB, cl *kgo.Client, topic, group string) map[int32]int64 {
	t.Helper()
	offs, err := kadm.NewClient(cl).FetchOffsets(ctxFor(t, 10*time.Second), group)
	if errors.Is(err, kerr.GroupIDNotFound) {
		return nil
	}
	if err != nil {
		t.Fatalf("group offsets: %v", err)
	}
	out := map[int32]int64{}
	offs.Each(func(o kadm.OffsetResponse) {
		if o.Topic == topic && o.Err == nil {
			out[o.Partition] = o.At
		}
	})
	return out
}

// recordEnds returns, per partition of topic, the offset after its last
// record. Batches are published in transactions, and a consumer group
// never commits past the commit marker that ends a partition, so the end
// offsets are not where a group that processed everything stands.
func recordEnds(t testing.TB, k *testenv.Kafka, topic string) map[int32]int64 {
	t.Helper()
	out := map[int32]int64{}
	for _, rec := range k.ReadAll(t, topic) {
		out[rec.Partition] = max(out[rec.Partition], rec.Offset+1)
	}
	return out
}

// waitCommitted waits until group committed at least ends in every
// partition of topic.
func waitCommitted(t testing.TB, cl *kgo.Client, topic, group string, ends map[int32]int64) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		got := groupOffsets(t, cl, topic, group)
		behind := 0
		for p, end := range ends {
			if got[p] < end {
				behind++
			}
		}
		if behind == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("fanout committed %v in %s, want at least %v", got, topic, ends)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitProcessed waits until the group committed every event published so
// far: their deliveries are committed in the same transactions.
func (r *rig) waitProcessed(t testing.TB) {
	t.Helper()
	waitCommitted(t, r.raw, r.names.Events, fanout.Group, recordEnds(t, r.kafka, r.names.Events))
}

// delivery is one delivery record as read back.
type delivery struct {
	record.Delivery
	rec *kgo.Record
}

func (r *rig) deliveries(t testing.TB) []delivery {
	t.Helper()
	return readDeliveries(t, r.kafka, r.names.Deliveries)
}

func readDeliveries(t testing.TB, k *testenv.Kafka, name string) []delivery {
	t.Helper()
	var out []delivery
	for _, rec := range k.ReadAll(t, name) {
		d, err := record.Parse(rec)
		if err != nil {
			t.Fatalf("delivery record at %d/%d: %v", rec.Partition, rec.Offset, err)
		}
		out = append(out, delivery{d, rec})
	}
	return out
}

// pairs counts deliveries per "event id -> endpoint id".
func pairs(ds []delivery) map[string]int {
	m := map[string]int{}
	for _, d := range ds {
		m[d.EventID+" -> "+d.EndpointID]++
	}
	return m
}

func pair(eventID, endpointID string) string { return eventID + " -> " + endpointID }

// traced returns a context carrying a remote span with a trace state, so
// published events get both traceparent and tracestate.
func traced(t testing.TB) context.Context {
	t.Helper()
	return trace.ContextWithRemoteSpanContext(ctxFor(t, 60*time.Second), testenv.RemoteSpan(t))
}

func header(hs []kgo.RecordHeader, key string) string {
	for _, h := range hs {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

func describe(m map[string]int) string {
	s := ""
	for k, v := range m {
		s += fmt.Sprintf("\n  %s: %d", k, v)
	}
	return s
}
