package deliverer_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/segmentio/encoding/json"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hookstream/hookstream/deliverer"
	"github.com/hookstream/hookstream/internal/record"
	"github.com/hookstream/hookstream/internal/testenv"
	"github.com/hookstream/hookstream/schemas"
	"github.com/hookstream/hookstream/sender"
	"github.com/hookstream/hookstream/signature"
	"github.com/hookstream/hookstream/subscription"
	"github.com/hookstream/hookstream/topic"
)

const (
	prefix = "hookstream."
	tenant = "acme"
)

// env is one broker, one Redis and a running endpoint store.
type env struct {
	kafka   *testenv.Kafka
	redis   *testenv.Redis
	topics  topic.Names
	catalog *schemas.Catalog
	store   *subscription.Store
	client  *kgo.Client // plain producer for test input
}

func newEnv(t *testing.T, partitions int32) *env {
	t.Helper()
	return newEnvOn(t, testenv.StartKafka(t), partitions)
}

// newEnvOn is newEnv on the broker k.
func newEnvOn(t *testing.T, k *testenv.Kafka, partitions int32) *env {
	t.Helper()
	cat, err := schemas.Load()
	if err != nil {
		t.Fatalf("schemas.Load: %v", err)
	}
	e := &env{
		kafka:   k,
		redis:   testenv.StartRedis(t),
		topics:  k.CreateTopics(t, prefix, topic.Partitions{Events: 1, Deliveries: partitions, Other: 1}),
		catalog: cat,
		client:  k.Client(t),
	}
	rdb := redis.NewClient(&redis.Options{Addr: e.redis.Addr})
	t.Cleanup(func() { _ = rdb.Close() })
	e.store = subscription.NewStore(k.Client(t), rdb, cat,
		subscription.WithTopicPrefix(prefix), subscription.WithAllowPrivate(true), subscription.WithLogger(testLogger()))
	testenv.Run(t, e.store)
	return e
}

// testLogger discards logs unless HOOKSTREAM_TEST_LOG is set.
func testLogger() *slog.Logger {
	if os.Getenv("HOOKSTREAM_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func ctxFor(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// endpoint creates an endpoint for url subscribed to everything.
func (e *env) endpoint(t *testing.T, url, ordering string) *subscription.Endpoint {
	t.Helper()
	ep, err := e.store.Create(ctxFor(t, 30*time.Second), tenant, subscription.EndpointInput{
		URL: url, Events: []string{"*"}, Ordering: ordering,
	})
	if err != nil {
		t.Fatalf("create endpoint: %v", err)
	}
	return ep
}

// eventID is the id of event n (1-based) of endpoint slot k: stable, so
// receivers and assertions agree.
func eventID(k, n int) string { return fmt.Sprintf("evt_%012x%012x", k, n) }

// body is the envelope of event n.
func body(id string, n int) []byte {
	return fmt.Appendf(nil, `{"id":%q,"event":"agent.created","timestamp":"2026-03-04T12:00:00+00:00","data":{"n":%d}}`, id, n)
}

// deliver produces delivery records for events from..to of ep.
func (e *env) deliver(t *testing.T, ep *subscription.Endpoint, k, from, to int) {
	t.Helper()
	var recs []*kgo.Record
	for n := from; n <= to; n++ {
		d := record.Delivery{EndpointID: ep.ID, Tenant: ep.Tenant, EventID: eventID(k, n), EventType: "agent.created", Body: body(eventID(k, n), n)}
		recs = append(recs, d.Record(e.topics.Deliveries))
	}
	if err := e.client.ProduceSync(ctxFor(t, 30*time.Second), recs...).FirstErr(); err != nil {
		t.Fatalf("produce deliveries: %v", err)
	}
}

type runOpts struct {
	schedule    string
	park        time.Duration
	timeout     time.Duration
	maxInFlight int
	extra       []deliverer.Option
	kopts       []kgo.Opt // the deliverer's Kafka client (default kafkaOpts)
}

// start runs a deliverer until the returned stop is called (or the test ends).
func (e *env) start(t *testing.T, o runOpts) (stop func()) {
	t.Helper()
	stopRun := testenv.Run(t, e.newDeliverer(t, o))
	return func() {
		if err := stopRun(); err != nil {
			t.Errorf("Run: %v", err)
		}
	}
}

// newDeliverer makes the deliverer start runs.
func (e *env) newDeliverer(t *testing.T, o runOpts) *deliverer.Deliverer {
	t.Helper()
	if o.schedule == "" {
		o.schedule = "0s,50ms,50ms,50ms,50ms,50ms"
	}
	if o.park == 0 {
		o.park = 10 * time.Second
	}
	if o.timeout == 0 {
		o.timeout = 5 * time.Second
	}
	if o.maxInFlight == 0 {
		o.maxInFlight = deliverer.DefaultMaxInFlight
	}
	sched, err := deliverer.ParseSchedule(o.schedule)
	if err != nil {
		t.Fatal(err)
	}
	snd := sender.New(sender.WithAllowPrivate(true), sender.WithTimeout(o.timeout))
	opts := append([]deliverer.Option{
		deliverer.WithTopics(e.topics),
		deliverer.WithSchedule(sched),
		deliverer.WithParkThreshold(o.park),
		deliverer.WithMaxInFlight(o.maxInFlight),
		deliverer.WithCommitInterval(100 * time.Millisecond),
		deliverer.WithDrainTimeout(3 * time.Second),
		deliverer.WithLogger(testLogger()),
	}, o.extra...)
	kopts := o.kopts
	if kopts == nil {
		kopts = kafkaOpts(e.kafka.Addr)
	}
	d, err := deliverer.New(kopts, e.store, snd, opts...)
	if err != nil {
		t.Fatalf("deliverer.New: %v", err)
	}
	return d
}

// kafkaOpts are short group timeouts, so tests see rebalances in seconds.
func kafkaOpts(addr string) []kgo.Opt {
	return []kgo.Opt{
		kgo.SeedBrokers(addr),
		kgo.SessionTimeout(1500 * time.Millisecond),
		kgo.HeartbeatInterval(200 * time.Millisecond),
		kgo.RebalanceTimeout(5 * time.Second),
	}
}

// always, as failing's tries, fails every attempt.
const always = math.MaxInt

// failing answers status to the first tries attempts of event n, 200 to
// everything else.
func failing(n, tries, status int) func(int, int) int {
	return func(m, try int) int {
		if m == n && try <= tries {
			return status
		}
		return 200
	}
}

// receiverEndpoint starts a receiver that answers as answer does (200 when
// nil) and an endpoint for it with ordering.
func (e *env) receiverEndpoint(t *testing.T, ordering string, answer func(n, try int) int) (*receiver, *subscription.Endpoint) {
	t.Helper()
	rc := newReceiver(t, answer)
	ep := e.endpoint(t, rc.srv.URL, ordering)
	rc.setSecret(ep)
	return rc, ep
}

// receipt is one request a receiver got.
type receipt struct {
	n      int
	status int
}

// receiver is a real HTTP endpoint that verifies every signature and
// answers what answer says (200 when nil).
type receiver struct {
	t      *testing.T
	srv    *httptest.Server
	mu     sync.Mutex
	secret []string
	got    []receipt
	tries  map[int]int
	answer func(n, try int) int
}

func newReceiver(t *testing.T, answer func(n, try int) int) *receiver {
	rc := &receiver{t: t, tries: map[int]int{}, answer: answer}
	rc.srv = httptest.NewServer(http.HandlerFunc(rc.serve))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) setSecret(ep *subscription.Endpoint) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.secret = []string{ep.Secrets[0].Value}
}

func (rc *receiver) serve(w http.ResponseWriter, r *http.Request) {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	rc.mu.Lock()
	secret := rc.secret
	rc.mu.Unlock()
	if err := signature.Verify(r.Header, b, secret); err != nil {
		rc.t.Errorf("receiver: signature: %v", err)
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	var ev struct {
		ID   string `json:"id"`
		Data struct {
			N int `json:"n"`
		} `json:"data"`
	}
	if err := json.Unmarshal(b, &ev); err != nil || ev.ID != r.Header.Get("webhook-id") {
		rc.t.Errorf("receiver: body %q, webhook-id %q: %v", b, r.Header.Get("webhook-id"), err)
	}
	rc.mu.Lock()
	rc.tries[ev.Data.N]++
	status := http.StatusOK
	if rc.answer != nil {
		status = rc.answer(ev.Data.N, rc.tries[ev.Data.N])
	}
	rc.got = append(rc.got, receipt{ev.Data.N, status})
	rc.mu.Unlock()
	w.WriteHeader(status)
}

// receipts returns the event numbers received, in order, and the ones
// answered 2xx.
func (rc *receiver) receipts() (all, ok []int) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	for _, g := range rc.got {
		all = append(all, g.n)
		if g.status < 300 {
			ok = append(ok, g.n)
		}
	}
	return all, ok
}

// delivered reports how many distinct events got a 2xx.
func (rc *receiver) delivered() int {
	_, ok := rc.receipts()
	seen := map[int]bool{}
	for _, n := range ok {
		seen[n] = true
	}
	return len(seen)
}

// checkOrder fails unless every event 1..n got a 2xx and none got its
// first 2xx before every earlier one had one; it returns the duplicates.
func checkOrder(t *testing.T, name string, ok []int, n int) (dups int) {
	t.Helper()
	seen := map[int]bool{}
	next := 1
	for _, x := range ok {
		switch {
		case seen[x]:
			dups++
		case x != next:
			t.Errorf("%s: event %d delivered before event %d (2xx sequence %v)", name, x, next, ok)
			return dups
		default:
			seen[x] = true
			next++
		}
	}
	if next != n+1 {
		t.Errorf("%s: %d of %d events delivered (2xx sequence %v)", name, next-1, n, ok)
	}
	return dups
}

// settled waits until the group has committed deliveries and retries up to
// their ends: every record is finished, so nothing more will be sent. It is
// how a test knows that nothing else arrives, without sleeping on it.
func (e *env) settled(t *testing.T) {
	t.Helper()
	testenv.Eventually(t, 30*time.Second, "committed offsets at the ends of deliveries and retries", func() bool {
		for _, name := range []string{e.topics.Deliveries, e.topics.Retries} {
			committed, ends := e.committed(t, name), e.ends(t, name)
			for p, end := range ends {
				if end > 0 && committed[p] != end {
					return false
				}
			}
		}
		return true
	})
}

// committed returns the group's committed offsets of topic, by partition.
func (e *env) committed(t *testing.T, topicName string) map[int32]int64 {
	t.Helper()
	adm := kadm.NewClient(e.client)
	o, err := adm.FetchOffsetsForTopics(ctxFor(t, 10*time.Second), deliverer.Group, topicName)
	if err != nil {
		t.Fatalf("fetch offsets: %v", err)
	}
	out := map[int32]int64{}
	for p, x := range o[topicName] {
		out[p] = x.At
	}
	return out
}

func (e *env) ends(t *testing.T, topicName string) map[int32]int64 {
	t.Helper()
	adm := kadm.NewClient(e.client)
	l, err := adm.ListEndOffsets(ctxFor(t, 10*time.Second), topicName)
	if err != nil {
		t.Fatalf("end offsets: %v", err)
	}
	out := map[int32]int64{}
	l.Each(func(o kadm.ListedOffset) { out[o.Partition] = o.Offset })
	return out
}

func header(r *kgo.Record, key string) string { return string(record.Header(r, key)) }

// readAtLeast reads topic until it holds n records (ReadAll gives up on a
// slow first fetch, so one read may come back short).
func (e *env) readAtLeast(t *testing.T, topicName string, n int) []*kgo.Record {
	t.Helper()
	var recs []*kgo.Record
	testenv.Eventually(t, 20*time.Second, fmt.Sprintf("%d records in %s", n, topicName), func() bool {
		recs = e.kafka.ReadAll(t, topicName)
		return len(recs) >= n
	})
	return recs
}

// allDelivered waits until every receiver got events 1..events, then checks
// each one's order and returns the duplicates among them.
func allDelivered(t *testing.T, timeout time.Duration, what string, rcs []*receiver, events int) (dups int) {
	t.Helper()
	testenv.Eventually(t, timeout, what, func() bool {
		for _, rc := range rcs {
			if rc.delivered() < events {
				return false
			}
		}
		return true
	})
	for k, rc := range rcs {
		_, ok := rc.receipts()
		dups += checkOrder(t, fmt.Sprintf("endpoint %d", k), ok, events)
	}
	return dups
}
