package deliverylog_test

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/encoding/json"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hookstream/hookstream/deliverer"
	"github.com/hookstream/hookstream/internal/deliverylog"
	"github.com/hookstream/hookstream/internal/record"
	"github.com/hookstream/hookstream/internal/testenv"
	"github.com/hookstream/hookstream/topic"
)

type env struct {
	kafka   *testenv.Kafka
	redis   *testenv.Redis
	cluster *testenv.RedisCluster // set: the index is in this Redis Cluster instead
	topics  topic.Names
	prod    *kgo.Client
	seq     int
	mu      sync.Mutex
}

func newEnv(t *testing.T) *env {
	t.Helper()
	k := testenv.StartKafka(t)
	e := &env{kafka: k, redis: testenv.StartRedis(t)}
	return e.withTopics(t)
}

func (e *env) withTopics(t *testing.T) *env {
	t.Helper()
	k := e.kafka
	e.topics = k.CreateTopics(t, "dl.", topic.Partitions{Events: 3, Deliveries: 3, Other: 3})
	e.prod = k.Client(t, kgo.DefaultProduceTopic(e.topics.Attempts))
	return e
}

func (e *env) indexer(t *testing.T) *deliverylog.Indexer {
	return deliverylog.NewIndexer(deliverylog.IndexerConfig{
		Seeds: []string{e.kafka.Addr}, Topic: e.topics.Attempts, Dead: e.topics.Dead,
		Matches: e.topics.Matches, Retries: e.topics.Retries, CheckEvery: 100 * time.Millisecond,
	}, e.redis.Client)
}

// produce writes n attempts of the tenant's endpoint and waits for the acks.
func (e *env) produce(t *testing.T, tenant, endpoint string, n int, edit func(i int, a *deliverer.Attempt)) {
	t.Helper()
	rs := make([]*kgo.Record, n)
	for i := range rs {
		e.mu.Lock()
		e.seq++
		seq := e.seq
		e.mu.Unlock()
		a := deliverer.Attempt{
			Tenant: tenant, EndpointID: endpoint, EventID: fmt.Sprintf("evt_%024x", seq), EventType: "agent.created",
			Attempt: 1, Status: 200, Outcome: "delivered", Trigger: "scheduled", At: time.Now().UTC(),
		}
		if edit != nil {
			edit(i, &a)
		}
		v, err := json.Marshal(a)
		if err != nil {
			t.Fatal(err)
		}
		rs[i] = &kgo.Record{Key: []byte(endpoint), Value: v}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := e.prod.ProduceSync(ctx, rs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

// all pages through an endpoint's attempts, 10 at a time.
func all(t *testing.T, ix *deliverylog.Index, tenant, endpoint string, f deliverylog.Filter) []deliverylog.Entry {
	t.Helper()
	var out []deliverylog.Entry
	q := deliverylog.Query{Filter: f, Limit: 10}
	for {
		pg, err := ix.EndpointAttempts(context.Background(), tenant, endpoint, q)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, pg.Data...)
		if pg.Next == "" {
			return out
		}
		q.Cursor = pg.Next
	}
}

// exactlyOnce fails unless entries hold each of want's event ids once.
func exactlyOnce(t *testing.T, entries []deliverylog.Entry, want int) {
	t.Helper()
	seen := map[string]int{}
	for _, e := range entries {
		seen[e.ID]++
		if seen[e.ID] == 2 {
			t.Errorf("entry %s twice", e.ID)
		}
	}
	if len(seen) != want {
		t.Errorf("%d distinct entries, want %d", len(seen), want)
	}
}

func TestQueriesAndTenantIsolation(t *testing.T) {
	e := newEnv(t)
	x := e.indexer(t)
	testenv.Run(t, x)
	ix := x.Index()
	classes := []string{"http_status", "connection_refused", "timeout"}
	e.produce(t, "acme", "ep_a", 6, func(i int, a *deliverer.Attempt) {
		if i%2 == 1 {
			a.Outcome, a.Status, a.ErrorClass = "failed", 0, classes[i/2]
			if a.ErrorClass == "http_status" {
				a.Status = 500
			}
		}
	})
	e.produce(t, "globex", "ep_g", 3, nil)
	testenv.Eventually(t, 20*time.Second, "9 attempts indexed", func() bool {
		return len(all(t, ix, "acme", "ep_a", deliverylog.Filter{})) == 6 && len(all(t, ix, "globex", "ep_g", deliverylog.Filter{})) == 3
	})

	tests := []struct {
		name string
		f    deliverylog.Filter
		want int
	}{
		{"all", deliverylog.Filter{}, 6},
		{"outcome", deliverylog.Filter{Outcome: "failed"}, 3},
		{"status code", deliverylog.Filter{StatusCode: 500}, 1},
		{"code class 2xx", deliverylog.Filter{CodeClass: 2}, 3},
		{"code class 5xx", deliverylog.Filter{CodeClass: 5}, 1},
		{"error class", deliverylog.Filter{ErrorClass: "timeout"}, 1},
		{"trigger", deliverylog.Filter{Trigger: "recover"}, 0},
		{"until the past", deliverylog.Filter{Until: time.Now().Add(-time.Hour)}, 0},
		{"since the past", deliverylog.Filter{Since: time.Now().Add(-time.Hour)}, 6},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := all(t, ix, "acme", "ep_a", tt.f); len(got) != tt.want {
				t.Errorf("%d attempts, want %d", len(got), tt.want)
			}
		})
	}

	got := all(t, ix, "acme", "ep_a", deliverylog.Filter{})
	for i := 1; i < len(got); i++ {
		if got[i-1].At.Before(got[i].At) {
			t.Errorf("not newest first: %s before %s", got[i-1].ID, got[i].ID)
		}
	}
	ctx := context.Background()
	one, err := ix.Attempt(ctx, "acme", got[0].ID)
	if err != nil || one.ID != got[0].ID || one.EventID != got[0].EventID {
		t.Fatalf("Attempt(%s) = %+v, %v", got[0].ID, one, err)
	}
	if pg, err := ix.EventAttempts(ctx, "acme", one.EventID, deliverylog.Query{}); err != nil || len(pg.Data) != 1 {
		t.Errorf("EventAttempts = %d, %v, want 1", len(pg.Data), err)
	}

	// Another tenant sees none of it: ids, lists and cursors.
	if _, err := ix.Attempt(ctx, "globex", got[0].ID); !errors.Is(err, deliverylog.ErrNotFound) {
		t.Errorf("another tenant's attempt id: %v, want ErrNotFound", err)
	}
	if pg, _ := ix.EndpointAttempts(ctx, "globex", "ep_a", deliverylog.Query{}); len(pg.Data) != 0 {
		t.Errorf("another tenant lists %d of acme's attempts", len(pg.Data))
	}
	if pg, _ := ix.EventAttempts(ctx, "globex", one.EventID, deliverylog.Query{}); len(pg.Data) != 0 {
		t.Errorf("another tenant lists %d of acme's event's attempts", len(pg.Data))
	}
	pg, err := ix.EndpointAttempts(ctx, "acme", "ep_a", deliverylog.Query{Limit: 2})
	if err != nil || pg.Next == "" {
		t.Fatalf("first page: %v, next %q", err, pg.Next)
	}
	if _, err := ix.EndpointAttempts(ctx, "globex", "ep_a", deliverylog.Query{Cursor: pg.Next}); !errors.Is(err, deliverylog.ErrNotFound) {
		t.Errorf("another tenant's cursor: %v, want ErrNotFound", err)
	}
	if _, err := ix.EndpointAttempts(ctx, "acme", "ep_other", deliverylog.Query{Cursor: pg.Next}); !errors.Is(err, deliverylog.ErrNotFound) {
		t.Errorf("another endpoint's cursor: %v, want ErrNotFound", err)
	}
	// Cursors well formed but made by hand, their position no entry id:
	// refused as cursors, not as Redis errors.
	for _, c := range []string{"garbage!", forged("n|xyz|ep:ep_a|acme"), forged("p|1-x|ep:ep_a|acme"), forged("n|(1|ep:ep_a|acme")} {
		if _, err := ix.EndpointAttempts(ctx, "acme", "ep_a", deliverylog.Query{Cursor: c}); !errors.Is(err, deliverylog.ErrBadCursor) {
			t.Errorf("cursor %q: %v, want ErrBadCursor", c, err)
		}
	}
	if _, err := ix.EndpointAttempts(ctx, "acme", "ep_a", deliverylog.Query{Cursor: forged("n|99999999999999|ep:ep_a|acme")}); err != nil {
		t.Errorf("a cursor at an entry id none has: %v, want a page", err)
	}
}

func forged(c string) string { return base64.RawURLEncoding.EncodeToString([]byte(c)) }

// TestPaginationWhileWriting pages 1,000 attempts 10 at a time while more
// arrive: every one of the 1,000 shows up, none twice; then Prev from the
// first page finds the ones that arrived.
func TestPaginationWhileWriting(t *testing.T) {
	e := newEnv(t)
	x := e.indexer(t)
	testenv.Run(t, x)
	ix := x.Index()
	e.produce(t, "acme", "ep_a", 1000, nil)
	testenv.Eventually(t, 60*time.Second, "1000 indexed", func() bool { return len(all(t, ix, "acme", "ep_a", deliverylog.Filter{})) == 1000 })
	before := all(t, ix, "acme", "ep_a", deliverylog.Filter{})

	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 20 {
			e.produce(t, "acme", "ep_a", 10, nil)
		}
	}()
	ctx := context.Background()
	first, err := ix.EndpointAttempts(ctx, "acme", "ep_a", deliverylog.Query{Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	got := first.Data
	for q := (deliverylog.Query{Limit: 10, Cursor: first.Next}); q.Cursor != ""; {
		pg, err := ix.EndpointAttempts(ctx, "acme", "ep_a", q)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, pg.Data...)
		q.Cursor = pg.Next
	}
	<-done
	seen := map[string]int{}
	for _, en := range got {
		seen[en.ID]++
		if seen[en.ID] > 1 {
			t.Fatalf("%s paged twice", en.ID)
		}
	}
	for _, en := range before {
		if seen[en.ID] != 1 {
			t.Fatalf("%s missing from the pages", en.ID)
		}
	}
	// Paging newer from the first page reaches everything that arrived.
	testenv.Eventually(t, 30*time.Second, "1200 indexed", func() bool { return len(all(t, ix, "acme", "ep_a", deliverylog.Filter{})) == 1200 })
	newer := 0
	for q := (deliverylog.Query{Limit: 10, Cursor: first.Prev}); ; {
		pg, err := ix.EndpointAttempts(ctx, "acme", "ep_a", q)
		if err != nil {
			t.Fatal(err)
		}
		for _, en := range pg.Data {
			seen[en.ID]++
			if seen[en.ID] > 1 {
				t.Fatalf("%s paged twice", en.ID)
			}
		}
		newer += len(pg.Data)
		if len(pg.Data) == 0 {
			break
		}
		q.Cursor = pg.Prev
	}
	if len(seen) != 1200 {
		t.Errorf("%d distinct attempts paged both ways (%d newer), want 1200", len(seen), newer)
	}
}

// TestRebuildAfterFlush flushes Redis while attempts arrive: the indexer
// notices, rebuilds from the topic, and every attempt is there once.
func TestRebuildAfterFlush(t *testing.T) {
	e := newEnv(t)
	x := e.indexer(t)
	testenv.Run(t, x)
	ix := x.Index()
	e.produce(t, "acme", "ep_a", 300, nil)
	now := time.Now()
	for i := range 30 {
		e.match(t, "acme", fmt.Sprintf("evt_m%03d", i), "agent.created", int64(i), now, []string{"ep_a"}, nil)
	}
	testenv.Eventually(t, 30*time.Second, "300 indexed", func() bool { return len(all(t, ix, "acme", "ep_a", deliverylog.Filter{})) == 300 })
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 10 {
			e.produce(t, "acme", "ep_a", 20, nil)
			e.match(t, "acme", fmt.Sprintf("evt_m%03d", 30+i), "agent.created", int64(30+i), now, []string{"ep_a"}, nil)
		}
	}()
	time.Sleep(20 * time.Millisecond)
	e.redis.FlushAll(t)
	<-done
	testenv.Eventually(t, 30*time.Second, "500 indexed again", func() bool { return len(all(t, ix, "acme", "ep_a", deliverylog.Filter{})) == 500 })
	exactlyOnce(t, all(t, ix, "acme", "ep_a", deliverylog.Filter{}), 500)
	// Every event is listed again, once, with its endpoint.
	testenv.Eventually(t, 30*time.Second, "40 events listed again", func() bool { return len(allEvents(t, ix, "acme")) == 40 })
	seen := map[string]int{}
	for _, ev := range allEvents(t, ix, "acme") {
		if seen[ev.ID]++; seen[ev.ID] > 1 || len(ev.Deliveries) != 1 {
			t.Errorf("event %+v listed twice or without its delivery", ev)
		}
	}
	// Every key written again after the flush expires: the indexer's
	// memory of expiries already written did not outlive the flush.
	keys, err := e.redis.Client.Keys(context.Background(), "dl:v2:{*").Result()
	if err != nil || len(keys) == 0 {
		t.Fatalf("index keys %v, %v", keys, err)
	}
	for _, k := range keys {
		if ttl := e.redis.Client.PTTL(context.Background(), k).Val(); ttl <= 0 {
			t.Errorf("key %s has no expiry (PTTL %v)", k, ttl)
		}
	}
}

// allEvents pages through the tenant's events, 10 at a time.
func allEvents(t *testing.T, ix *deliverylog.Index, tenant string) []deliverylog.Event {
	t.Helper()
	var out []deliverylog.Event
	q := deliverylog.EventQuery{Limit: 10}
	for {
		pg, err := ix.Events(context.Background(), tenant, q)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, pg.Data...)
		if pg.Next == "" {
			return out
		}
		q.Cursor = pg.Next
	}
}

// TestReplayIsIdempotent restarts the indexer as a crash would leave it:
// entries written but their offsets not, so it reads them again.
func TestReplayIsIdempotent(t *testing.T) {
	e := newEnv(t)
	x := e.indexer(t)
	stop := testenv.Run(t, x)
	ix := x.Index()
	e.produce(t, "acme", "ep_a", 200, nil)
	testenv.Eventually(t, 30*time.Second, "200 indexed", func() bool { return len(all(t, ix, "acme", "ep_a", deliverylog.Filter{})) == 200 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if err := e.redis.Client.Del(context.Background(), "dl:v2:indexer:offsets").Err(); err != nil {
		t.Fatal(err)
	}
	testenv.Run(t, e.indexer(t))
	e.produce(t, "acme", "ep_a", 50, nil)
	testenv.Eventually(t, 30*time.Second, "250 indexed", func() bool { return len(all(t, ix, "acme", "ep_a", deliverylog.Filter{})) >= 250 })
	exactlyOnce(t, all(t, ix, "acme", "ep_a", deliverylog.Filter{}), 250)
}

// TestIndexerKill9 SIGKILLs a `hookstream indexer` process while attempts
// stream in and starts another from offsets rolled back to the start:
// every attempt ends up indexed exactly once.
func TestIndexerKill9(t *testing.T) {
	bin := testenv.Binary(t)
	e := newEnv(t)
	start := func() *testenv.Process {
		cmd := exec.Command(bin, "indexer",
			"--kafka-brokers", e.kafka.Addr,
			"--redis-url", e.redis.URL,
			"--topic-prefix", "dl.",
			"--http-addr", "127.0.0.1:0",
			"--log-format", "text",
		)
		cmd.Env = []string{"PATH=/usr/bin:/bin"}
		return testenv.Start(t, cmd)
	}
	const batches, per = 100, 20
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range batches {
			e.produce(t, "acme", "ep_a", per, nil)
			e.match(t, "acme", fmt.Sprintf("evt_k%03d", i), "agent.created", int64(i), time.Now(), []string{"ep_a"}, nil)
			time.Sleep(10 * time.Millisecond)
		}
	}()
	ix := deliverylog.NewIndex(e.redis.Client, 0)
	count := func() int { return len(all(t, ix, "acme", "ep_a", deliverylog.Filter{})) }
	p := start()
	testenv.Eventually(t, 30*time.Second, "some attempts indexed", func() bool { return count() >= 100 })
	p.Kill()
	n := count()
	select {
	case <-done:
		t.Fatalf("all attempts were produced before the kill (%d indexed): nothing mid-stream", n)
	default:
	}
	// A kill lands between a poll's index writes and its stored offsets
	// only rarely: roll the offsets back, so that the restart reads again
	// what was indexed and must skip it (the endpoint states' offsets).
	if err := e.redis.Client.Del(context.Background(), "dl:v2:indexer:offsets").Err(); err != nil {
		t.Fatal(err)
	}
	start()
	<-done
	testenv.Eventually(t, 60*time.Second, "every attempt indexed", func() bool { return count() >= batches*per })
	exactlyOnce(t, all(t, ix, "acme", "ep_a", deliverylog.Filter{}), batches*per)
	testenv.Eventually(t, 30*time.Second, "every event listed", func() bool { return len(allEvents(t, ix, "acme")) >= batches })
	seen := map[string]bool{}
	for _, ev := range allEvents(t, ix, "acme") {
		if seen[ev.ID] {
			t.Errorf("event %s listed twice", ev.ID)
		}
		seen[ev.ID] = true
	}
	if len(seen) != batches {
		t.Errorf("%d events listed, want %d", len(seen), batches)
	}
	t.Logf("killed with %d of %d indexed", n, batches*per)
}

// TestEventDeliveries indexes fanout's match record, attempts and a dead
// letter: Event lists each matched endpoint with its status and the Kafka
// location of the event's bytes. Delivery records themselves are not read.
func TestEventDeliveries(t *testing.T) {
	e := newEnv(t)
	x := e.indexer(t)
	testenv.Run(t, x)
	ctx := context.Background()
	body := []byte(`{"id":"evt_1","event":"agent.created","timestamp":"2026-03-04T12:00:00+00:00","data":{}}`)
	var recs []*kgo.Record
	for _, ep := range []string{"ep_ok", "ep_dead", "ep_new"} {
		d := record.Delivery{EndpointID: ep, Tenant: "acme", EventID: "evt_1", EventType: "agent.created", Body: body}
		recs = append(recs, d.Record(e.topics.Deliveries))
	}
	m := record.Match{Tenant: "acme", EventID: "evt_1", EventType: "agent.created", Endpoints: []string{"ep_ok", "ep_dead", "ep_new"},
		Topic: e.topics.Events, Partition: 1, Offset: 5, At: time.Now().UTC()}
	mr, err := m.Record(e.topics.Matches)
	if err != nil {
		t.Fatal(err)
	}
	res := e.prod.ProduceSync(ctx, append(recs, mr)...)
	if err := res.FirstErr(); err != nil {
		t.Fatal(err)
	}
	var deadSrc *kgo.Record
	for _, r := range res {
		if string(r.Record.Key) == "ep_dead" {
			deadSrc = r.Record
		}
	}
	if err := e.prod.ProduceSync(ctx, record.Dead(deadSrc, e.topics.Dead, "retries exhausted: 500")).FirstErr(); err != nil {
		t.Fatal(err)
	}
	e.produce(t, "acme", "ep_ok", 1, func(_ int, a *deliverer.Attempt) { a.EventID = "evt_1" })
	e.produce(t, "acme", "ep_dead", 2, func(i int, a *deliverer.Attempt) {
		a.EventID, a.Attempt, a.Status, a.Outcome = "evt_1", i+1, 500, "failed"
	})
	var ev deliverylog.Event
	testenv.Eventually(t, 20*time.Second, "the event's three deliveries settled", func() bool {
		var err error
		ev, err = x.Index().Event(ctx, "acme", "evt_1")
		return err == nil && len(ev.Deliveries) == 3 && ev.Deliveries[0].Status == deliverylog.StatusDead &&
			ev.Deliveries[0].Attempts == 2 && ev.Deliveries[2].Status == deliverylog.StatusDelivered
	})
	want := map[string]string{"ep_dead": deliverylog.StatusDead, "ep_new": deliverylog.StatusPending, "ep_ok": deliverylog.StatusDelivered}
	for _, d := range ev.Deliveries {
		if d.Status != want[d.EndpointID] {
			t.Errorf("delivery %+v, want %s", d, want[d.EndpointID])
		}
	}
	if ev.Source != (deliverylog.Location{Topic: e.topics.Events, Partition: 1, Offset: 5}) {
		t.Errorf("event source %+v, want the match's", ev.Source)
	}
	if ev.Status != deliverylog.StatusDead || ev.Type != "agent.created" || ev.Deliveries[0].DeadReason == "" {
		t.Errorf("event %+v, want dead, agent.created, with the dead reason", ev)
	}
	if _, err := x.Index().Event(ctx, "globex", "evt_1"); !errors.Is(err, deliverylog.ErrNotFound) {
		t.Errorf("another tenant's event: %v, want ErrNotFound", err)
	}
}

// TestRebuildIgnoresStaleState: index keys written without a generation
// (a poll that landed between a flush and the indexer noticing it, here
// the newest ten attempts) must not stop the rebuild from indexing every
// older attempt: each attempt ends up listed exactly once.
func TestRebuildIgnoresStaleState(t *testing.T) {
	e := newEnv(t)
	e.produce(t, "acme", "ep_a", 100, nil)
	var stale []deliverylog.Located
	for _, r := range e.kafka.ReadAll(t, e.topics.Attempts) {
		var a deliverer.Attempt
		if err := json.Unmarshal(r.Value, &a); err != nil {
			t.Fatal(err)
		}
		stale = append(stale, deliverylog.Located{Partition: r.Partition, Offset: r.Offset, Attempt: a})
	}
	if len(stale) != 100 {
		t.Fatalf("%d attempts in the topic, want 100", len(stale))
	}
	ix := deliverylog.NewIndex(e.redis.Client, 0)
	if err := ix.AddAll(context.Background(), stale[90:]); err != nil {
		t.Fatal(err)
	}
	testenv.Run(t, e.indexer(t))
	testenv.Eventually(t, 30*time.Second, "100 attempts listed", func() bool { return len(all(t, ix, "acme", "ep_a", deliverylog.Filter{})) >= 100 })
	got := all(t, ix, "acme", "ep_a", deliverylog.Filter{})
	exactlyOnce(t, got, 100)
	events := map[string]bool{}
	for _, a := range got {
		events[a.EventID] = true
	}
	if len(got) != 100 || len(events) != 100 {
		t.Errorf("%d attempts listed for %d events, want 100 once each", len(got), len(events))
	}
}
