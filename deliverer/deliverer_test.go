package deliverer_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hookstream/hookstream/deliverer"
	"github.com/hookstream/hookstream/fanout"
	"github.com/hookstream/hookstream/internal/record"
	"github.com/hookstream/hookstream/internal/testenv"
	"github.com/hookstream/hookstream/producer"
	"github.com/hookstream/hookstream/subscription"
)

func TestOrderUnderFailure(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 3)
	rc, ep := e.receiverEndpoint(t, "", failing(3, 2, 500))
	e.start(t, runOpts{schedule: "0s,50ms,50ms,50ms"})
	e.deliver(t, ep, 0, 1, 10)
	testenv.Eventually(t, 20*time.Second, "10 deliveries", func() bool { return rc.delivered() == 10 })
	e.settled(t) // nothing else arrives once every record is finished
	all, _ := rc.receipts()
	want := []int{1, 2, 3, 3, 3, 4, 5, 6, 7, 8, 9, 10}
	if !slices.Equal(all, want) {
		t.Errorf("receiver got %v, want %v", all, want)
	}
}

// blackHole accepts connections and never answers.
func blackHole(t *testing.T) (url string, accepted *atomic.Int64) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	accepted = new(atomic.Int64)
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	return "http://" + l.Addr().String() + "/hook", accepted
}

func TestIsolation(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 1) // one partition: both endpoints share a worker
	holeURL, accepted := blackHole(t)
	hole := e.endpoint(t, holeURL, "")
	rc, healthy := e.receiverEndpoint(t, "", nil)
	// Two slots in all: the black hole may hold one, never both, and none
	// while it waits out its backoff.
	e.start(t, runOpts{schedule: "0s,2s,2s,2s", timeout: 2 * time.Second, maxInFlight: 2})
	for n := 1; n <= 100; n++ {
		e.deliver(t, hole, 1, n, n)
		e.deliver(t, healthy, 2, n, n)
	}
	testenv.Eventually(t, 30*time.Second, "100 deliveries to the healthy endpoint", func() bool { return rc.delivered() == 100 })
	if n := accepted.Load(); n < 1 || n > 3 {
		t.Errorf("black hole accepted %d connections by then, want 1..3 (stuck on its first event)", n)
	}
	_, ok := rc.receipts()
	if dups := checkOrder(t, "healthy", ok, 100); dups != 0 {
		t.Errorf("healthy endpoint got %d duplicates without any crash", dups)
	}
}

func TestParkRoundTrip(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 2)
	rc, ep := e.receiverEndpoint(t, "", failing(1, 2, 503))
	e.start(t, runOpts{schedule: "0s,300ms,300ms", park: 100 * time.Millisecond})
	e.deliver(t, ep, 0, 1, 5)
	testenv.Eventually(t, 20*time.Second, "5 deliveries", func() bool { return rc.delivered() == 5 })
	e.settled(t) // nothing else arrives once every record is finished
	all, ok := rc.receipts()
	if want := []int{1, 1, 1, 2, 3, 4, 5}; !slices.Equal(all, want) {
		t.Errorf("receiver got %v, want %v", all, want)
	}
	checkOrder(t, "parked", ok, 5)
	// Every event went through retries once, in order: 1 after its first
	// failure, 2..5 queued behind it; its second failure left it where it
	// was, the lane's marker counting the attempt.
	parked := parkedRecords(t, e.readAtLeast(t, e.topics.Retries, 6))
	var ids []string
	for _, d := range parked {
		ids = append(ids, d.EventID)
	}
	if want := []string{eventID(0, 1), eventID(0, 2), eventID(0, 3), eventID(0, 4), eventID(0, 5)}; !slices.Equal(ids, want) {
		t.Errorf("parked records %v, want %v", ids, want)
	}
	if first := parked[0]; first.Attempt != 1 || first.NotBefore.IsZero() || first.FirstTry.IsZero() {
		t.Errorf("first parked record: %+v; want event 1 after 1 attempt, with not-before and first try", first)
	}
}

// parkedRecords parses the delivery records among recs of the retries
// topic, leaving the lane markers out.
func parkedRecords(t *testing.T, recs []*kgo.Record) []record.Delivery {
	t.Helper()
	var out []record.Delivery
	for _, r := range recs {
		if record.Header(r, deliverer.HeaderMarker) != nil {
			continue
		}
		d, err := record.Parse(r)
		if err != nil {
			t.Fatalf("retries offset %d: %v", r.Offset, err)
		}
		out = append(out, d)
	}
	return out
}

func TestParkRestart(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 2)
	rc, ep := e.receiverEndpoint(t, "", failing(1, 2, 500))
	// The first deliverer parks event 1 for a long time and everything
	// behind it; it is stopped while they are parked.
	stop := e.start(t, runOpts{schedule: "0s,2s,300ms", park: 100 * time.Millisecond})
	e.deliver(t, ep, 0, 1, 5)
	e.readAtLeast(t, e.topics.Retries, 5)
	stop()
	if all, _ := rc.receipts(); !slices.Equal(all, []int{1}) {
		t.Fatalf("before the restart the receiver got %v, want [1]", all)
	}
	e.deliver(t, ep, 0, 6, 8) // live records newer than the parked ones
	e.start(t, runOpts{schedule: "0s,2s,300ms", park: 100 * time.Millisecond})
	testenv.Eventually(t, 20*time.Second, "8 deliveries", func() bool { return rc.delivered() == 8 })
	_, ok := rc.receipts()
	if dups := checkOrder(t, "restarted", ok, 8); dups != 0 {
		t.Errorf("%d duplicates after a clean stop", dups)
	}
}

func TestDeadLetter(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 1)
	rc, ep := e.receiverEndpoint(t, "", failing(1, always, 500))
	e.start(t, runOpts{schedule: "0s,50ms,50ms"})
	e.deliver(t, ep, 0, 1, 2)
	testenv.Eventually(t, 20*time.Second, "event 2", func() bool { return rc.delivered() == 1 })
	all, _ := rc.receipts()
	if want := []int{1, 1, 1, 2}; !slices.Equal(all, want) {
		t.Errorf("receiver got %v, want %v", all, want)
	}
	dead := e.readAtLeast(t, e.topics.Dead, 1)
	if len(dead) != 1 {
		t.Fatalf("%d dead letters, want 1", len(dead))
	}
	d, err := record.Parse(dead[0])
	if err != nil {
		t.Fatal(err)
	}
	reason := header(dead[0], record.HeaderReason)
	if d.EventID != eventID(0, 1) || d.Attempt != 3 || !strings.Contains(reason, "HTTP 500") || !strings.Contains(reason, "3 attempts") {
		t.Errorf("dead letter: event %s after %d attempts, reason %q", d.EventID, d.Attempt, reason)
	}
	if !bytes.Equal(dead[0].Value, body(eventID(0, 1), 1)) {
		t.Errorf("dead letter value %q, want the event's envelope", dead[0].Value)
	}
}

func TestPoison(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 1)
	rc, ep := e.receiverEndpoint(t, "", nil)
	e.start(t, runOpts{})
	poison := []*kgo.Record{
		{Topic: e.topics.Deliveries, Key: []byte("x"), Value: []byte("not an envelope")},
		{Topic: e.topics.Deliveries, Key: []byte(ep.ID), Value: []byte("{}"), Headers: []kgo.RecordHeader{
			{Key: record.HeaderEndpoint, Value: []byte(ep.ID)}, {Key: record.HeaderEventID, Value: []byte("evt_1")},
			{Key: record.HeaderAttempt, Value: []byte("many")},
		}},
	}
	if err := e.client.ProduceSync(ctxFor(t, 10*time.Second), poison...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	e.deliver(t, ep, 0, 1, 1)
	testenv.Eventually(t, 20*time.Second, "the delivery after the poison", func() bool { return rc.delivered() == 1 })
	dead := e.readAtLeast(t, e.topics.Dead, 2)
	for i, want := range []string{"no hookstream-endpoint header", `hookstream-attempt="many"`} {
		if r := header(dead[i], record.HeaderReason); !strings.Contains(r, want) {
			t.Errorf("dead letter %d reason %q, want it to say %q", i, r, want)
		}
	}
	if src := header(dead[0], record.HeaderSource); src != e.topics.Deliveries+"/0/0" {
		t.Errorf("dead letter source %q", src)
	}
}

func TestGone(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 1)
	rc := newReceiver(t, func(n, _ int) int { return 410 })
	ep := e.endpoint(t, rc.srv.URL, "")
	rc.setSecret(ep)
	pub := producer.New(e.client, e.catalog, producer.WithTopicPrefix(prefix))
	e.start(t, runOpts{extra: []deliverer.Option{deliverer.WithPublisher(pub)}})
	e.deliver(t, ep, 0, 1, 2)
	dead := e.readAtLeast(t, e.topics.Dead, 2)
	if all, _ := rc.receipts(); !slices.Equal(all, []int{1}) {
		t.Errorf("receiver got %v, want only event 1 (then the endpoint is disabled)", all)
	}
	if r := header(dead[0], record.HeaderReason); !strings.Contains(r, "410") {
		t.Errorf("first dead letter reason %q, want 410", r)
	}
	if r := header(dead[1], record.HeaderReason); !strings.HasPrefix(r, "endpoint disabled") {
		t.Errorf("second dead letter reason %q, want endpoint disabled", r)
	}
	got, err := e.store.Endpoint(ctxFor(t, 10*time.Second), ep.ID)
	if err != nil || !got.Disabled || !strings.Contains(got.DisabledReason, "410") {
		t.Errorf("endpoint after 410: %+v, %v; want disabled naming 410", got, err)
	}
	checkDisabledEvent(t, e, ep)
}

func checkDisabledEvent(t *testing.T, e *env, ep *subscription.Endpoint) {
	t.Helper()
	testenv.Eventually(t, 20*time.Second, "an endpoint.disabled event", func() bool {
		for _, r := range e.kafka.ReadAll(t, e.topics.Events) {
			if header(r, record.HeaderTenant) == ep.Tenant && bytes.Contains(r.Value, []byte(`"endpoint.disabled"`)) &&
				bytes.Contains(r.Value, []byte(ep.ID)) && bytes.Contains(r.Value, []byte(`"failing_since"`)) {
				return true
			}
		}
		return false
	})
}

func TestDisableAfter(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 1)
	rc := newReceiver(t, func(int, int) int { return 500 })
	ep := e.endpoint(t, rc.srv.URL, "")
	rc.setSecret(ep)
	pub := producer.New(e.client, e.catalog, producer.WithTopicPrefix(prefix))
	e.start(t, runOpts{schedule: "0s,100ms,100ms,100ms,100ms,100ms,100ms,100ms,100ms,100ms", extra: []deliverer.Option{
		deliverer.WithPublisher(pub), deliverer.WithDisableAfter(300 * time.Millisecond),
	}})
	e.deliver(t, ep, 0, 1, 3)
	testenv.Eventually(t, 20*time.Second, "endpoint disabled", func() bool {
		got, err := e.store.Endpoint(ctxFor(t, 10*time.Second), ep.ID)
		return err == nil && got.Disabled
	})
	dead := e.readAtLeast(t, e.topics.Dead, 3)
	if r := header(dead[0], record.HeaderReason); !strings.Contains(r, "every attempt failed since") {
		t.Errorf("dead letter reason %q", r)
	}
	all, _ := rc.receipts()
	if len(all) < 3 || len(all) > 6 {
		t.Errorf("receiver got %v: want event 1 tried until 300ms had passed, then nothing", all)
	}
	checkDisabledEvent(t, e, ep)
}

func TestDeletedEndpoint(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 1)
	rc, gone := e.receiverEndpoint(t, "", nil)
	if err := e.store.Delete(ctxFor(t, 10*time.Second), tenant, gone.ID); err != nil {
		t.Fatal(err)
	}
	rc2, live := e.receiverEndpoint(t, "", nil)
	e.start(t, runOpts{})
	e.deliver(t, gone, 0, 1, 3)
	e.deliver(t, live, 1, 1, 1)
	testenv.Eventually(t, 20*time.Second, "the live endpoint's delivery", func() bool { return rc2.delivered() == 1 })
	testenv.Eventually(t, 10*time.Second, "offsets committed to the end", func() bool {
		return e.committed(t, e.topics.Deliveries)[0] == e.ends(t, e.topics.Deliveries)[0]
	})
	if all, _ := rc.receipts(); len(all) != 0 {
		t.Errorf("deleted endpoint received %v", all)
	}
	var deleted int
	for _, r := range e.readAtLeast(t, e.topics.Attempts, 4) {
		if bytes.Contains(r.Value, []byte(`"outcome":"deleted"`)) && string(r.Key) == gone.ID {
			deleted++
		}
	}
	if deleted != 3 {
		t.Errorf("%d attempts records say deleted, want 3", deleted)
	}
	if d := e.kafka.ReadAll(t, e.topics.Dead); len(d) != 0 {
		t.Errorf("%d dead letters for a deleted endpoint, want none", len(d))
	}
}

func TestOffsetsAfterCleanStop(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 3)
	rc, ep := e.receiverEndpoint(t, "", nil)
	stop := e.start(t, runOpts{})
	e.deliver(t, ep, 0, 1, 20)
	testenv.Eventually(t, 20*time.Second, "20 deliveries", func() bool { return rc.delivered() == 20 })
	stop()
	committed, ends := e.committed(t, e.topics.Deliveries), e.ends(t, e.topics.Deliveries)
	for p, end := range ends {
		if end > 0 && committed[p] != end {
			t.Errorf("partition %d: committed %d, end %d", p, committed[p], end)
		}
	}
	e.start(t, runOpts{})
	e.deliver(t, ep, 0, 21, 25)
	testenv.Eventually(t, 20*time.Second, "25 deliveries", func() bool { return rc.delivered() == 25 })
	e.settled(t) // nothing else arrives once every record is finished
	all, ok := rc.receipts()
	if len(all) != 25 {
		t.Errorf("receiver got %d requests, want 25 (nothing redelivered after a clean stop): %v", len(all), all)
	}
	checkOrder(t, "restart", ok, 25)
}

func TestUnordered(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 1)
	var mu sync.Mutex
	cur, peak := 0, 0
	release := make(chan struct{})
	rc := newReceiver(t, func(n, _ int) int {
		mu.Lock()
		cur++
		peak = max(peak, cur)
		if peak >= 4 {
			select {
			case <-release:
			default:
				close(release)
			}
		}
		mu.Unlock()
		return 200
	})
	// Hold requests until 4 run at once (or a timeout): only an unordered
	// lane gets there.
	inner := rc.srv.Config.Handler
	rc.srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		inner.ServeHTTP(w, r)
		select {
		case <-release:
		case <-time.After(3 * time.Second):
		}
		mu.Lock()
		cur--
		mu.Unlock()
	})
	ep := e.endpoint(t, rc.srv.URL, subscription.OrderingNone)
	rc.setSecret(ep)
	e.start(t, runOpts{extra: []deliverer.Option{deliverer.WithUnorderedConcurrency(5)}})
	e.deliver(t, ep, 0, 1, 20)
	testenv.Eventually(t, 30*time.Second, "20 deliveries", func() bool { return rc.delivered() == 20 })
	mu.Lock()
	defer mu.Unlock()
	if peak < 4 || peak > 5 {
		t.Errorf("peak concurrency %d, want 4..5 (unordered, bounded by 5)", peak)
	}
}

// TestFanoutEndToEnd publishes events through the producer library and runs
// fanout and the deliverer: every event reaches every matching endpoint, in
// order, signed.
func TestFanoutEndToEnd(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 3)
	rcs := []*receiver{newReceiver(t, nil), newReceiver(t, nil)}
	for _, rc := range rcs {
		rc.setSecret(e.endpoint(t, rc.srv.URL, ""))
	}
	sess, err := kgo.NewGroupTransactSession(append(kafkaOpts(e.kafka.Addr),
		fanout.ClientOpts(e.topics, fanout.Group, fanout.TransactionalID())...)...)
	if err != nil {
		t.Fatal(err)
	}
	f := fanout.New(sess, e.store, e.catalog, fanout.WithTopics(e.topics), fanout.WithLogger(testLogger()))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = f.Run(ctx); sess.Close(); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	e.start(t, runOpts{})

	pub := producer.New(e.client, e.catalog, producer.WithTopicPrefix(prefix))
	const events = 20
	for n := 1; n <= events; n++ {
		data := fmt.Appendf(nil, `{"agent_id":"agt_%d","name":"bot","model":"m","created_by":%d,"n":%d}`, n, n, n)
		if _, err := pub.Publish(ctxFor(t, 10*time.Second), tenant, "agent.created", data); err != nil {
			t.Fatalf("publish %d: %v", n, err)
		}
	}
	for i, rc := range rcs {
		testenv.Eventually(t, 30*time.Second, "every event", func() bool { return rc.delivered() == events })
		_, ok := rc.receipts()
		checkOrder(t, fmt.Sprintf("endpoint %d", i), ok, events)
	}
}

// TestBackpressure holds at most a few records per partition in memory: the
// worker pauses and resumes fetching, and nothing is lost or reordered.
func TestBackpressure(t *testing.T) {
	t.Parallel()
	backpressure(t, deliverer.WithMaxBuffered(3))
}

// backpressure runs TestBackpressure's check with limit, an option that
// must pause a partition once it holds about three records.
func backpressure(t *testing.T, limit deliverer.Option) {
	e := newEnv(t, 2)
	part := kgo.StickyKeyPartitioner(nil).ForTopic(e.topics.Deliveries)
	partOf := func(ep *subscription.Endpoint) int { return part.Partition(&kgo.Record{Key: []byte(ep.ID)}, 2) }
	// A hangs until released: its lane holds its records unfinished, which
	// with WithMaxBuffered(3) must pause its partition's fetches.
	release := make(chan struct{})
	var hung atomic.Int64
	a, epA := e.receiverEndpoint(t, "", func(n, _ int) int {
		hung.Add(1)
		<-release
		return 200
	})
	t.Cleanup(func() {
		select {
		case <-release:
		default:
			close(release)
		}
	})
	var b, c *receiver
	var epB, epC *subscription.Endpoint
	for epB == nil || epC == nil {
		rc, ep := e.receiverEndpoint(t, "", nil)
		switch {
		case partOf(ep) == partOf(epA) && epB == nil:
			b, epB = rc, ep
		case partOf(ep) != partOf(epA) && epC == nil:
			c, epC = rc, ep
		}
	}
	e.start(t, runOpts{extra: []deliverer.Option{limit}})
	e.deliver(t, epA, 0, 1, 5)
	testenv.Eventually(t, 20*time.Second, "A's first request", func() bool { return hung.Load() == 1 })
	e.deliver(t, epB, 0, 1, 5)
	// C's partition is not paused, and every fetch asks for both
	// partitions: once C got two records produced one after the other
	// after B's, B's records would have been fetched and sent by now had
	// A's partition not been paused.
	for n := 1; n <= 2; n++ {
		e.deliver(t, epC, 0, n, n)
		testenv.Eventually(t, 20*time.Second, fmt.Sprintf("C's record %d", n), func() bool { return c.delivered() == n })
	}
	if got := b.delivered(); got != 0 {
		t.Fatalf("B got %d records while A's partition held WithMaxBuffered records: its fetches were not paused", got)
	}
	close(release)
	testenv.Eventually(t, 30*time.Second, "A's and B's records after the release", func() bool {
		return a.delivered() == 5 && b.delivered() == 5
	})
	for name, rc := range map[string]*receiver{"A": a, "B": b} {
		_, ok := rc.receipts()
		if dups := checkOrder(t, name, ok, 5); dups != 0 {
			t.Errorf("%s: %d duplicates without a crash", name, dups)
		}
	}
}

// TestCommitsWhileBusy: a partition that always has a record in flight
// still commits up to its lowest unfinished record as it goes, so a crash
// redoes only that much. Here one endpoint's records take 300 ms each,
// interleaved with another's quick ones in the same partition.
func TestCommitsWhileBusy(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 1)
	fast, epFast := e.receiverEndpoint(t, "", nil)
	slow, epSlow := e.receiverEndpoint(t, "", func(int, int) int {
		time.Sleep(300 * time.Millisecond)
		return 200
	})
	const events = 20
	for n := 1; n <= events; n++ {
		e.deliver(t, epFast, 0, n, n)
		e.deliver(t, epSlow, 1, n, n)
	}
	e.start(t, runOpts{})
	// Record 2k+1 is the slow endpoint's event k+1: while it is in flight,
	// everything below it is done and committed.
	committed := func() int64 {
		o, err := kadm.NewClient(e.client).FetchOffsetsForTopics(ctxFor(t, 5*time.Second), deliverer.Group, e.topics.Deliveries)
		if err != nil { // the group's first commit not made yet
			return -1
		}
		return o[e.topics.Deliveries][0].At
	}
	testenv.Eventually(t, 10*time.Second, "a commit past ten records while the slow endpoint has more than five to go", func() bool {
		return committed() >= 10 && slow.delivered() < events-5
	})
	allDelivered(t, 20*time.Second, "every event", []*receiver{fast, slow}, events)
}
