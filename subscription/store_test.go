package subscription

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hookstream/hookstream/internal/testenv"
	"github.com/segmentio/encoding/json"
	"github.com/twmb/franz-go/pkg/kgo"
)

func TestMatch(t *testing.T) { backends(t, testMatch) }

func testMatch(t *testing.T, e *env) {
	s := e.store(t, true)
	ctx := ctxFor(t, time.Minute)
	exact := create(t, s, "t1", "agent.created")
	prefix := create(t, s, "t1", "agent.*")
	all := create(t, s, "t1", "*")
	call := create(t, s, "t1", "call.started")
	two := create(t, s, "t1", "billing.payment_failed", "agent.created")
	disabled := create(t, s, "t1", "agent.created")
	deleted := create(t, s, "t1", "agent.*")
	other := create(t, s, "t2", "*")
	if err := s.Disable(ctx, disabled.ID, "410 Gone"); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, "t1", deleted.ID); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		tenant, eventType string
		want              []string
	}{
		{"t1", "agent.created", []string{exact.ID, prefix.ID, all.ID, two.ID}},
		{"t1", "agent.deployed", []string{prefix.ID, all.ID}},
		{"t1", "call.started", []string{all.ID, call.ID}},
		{"t1", "call.ended", []string{all.ID}},
		{"t1", "billing.payment_failed", []string{all.ID, two.ID}},
		{"t2", "agent.created", []string{other.ID}},
		{"t3", "agent.created", nil},
		{"t1", "agent", []string{all.ID}}, // not a type, "*" still selects it
	}
	for _, pass := range []string{"cold", "warm"} {
		if pass == "cold" {
			s.invalidate()
		}
		for _, tt := range tests {
			if got := match(t, s, tt.tenant, tt.eventType); !sameIDs(got, tt.want) {
				t.Errorf("%s Match(%s, %s) = %v, want %v", pass, tt.tenant, tt.eventType, got, tt.want)
			}
		}
	}

	// Changing an endpoint moves it between index sets.
	events := []string{"call.*"}
	enable := false
	if _, err := s.Update(ctx, "t1", exact.ID, Patch{Events: events}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Update(ctx, "t1", disabled.ID, Patch{Disabled: &enable}); err != nil {
		t.Fatal(err)
	}
	if err := s.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if got, want := match(t, s, "t1", "agent.created"), []string{prefix.ID, all.ID, two.ID, disabled.ID}; !sameIDs(got, want) {
		t.Errorf("after update, Match(agent.created) = %v, want %v", got, want)
	}
	if got, want := match(t, s, "t1", "call.ended"), []string{all.ID, exact.ID}; !sameIDs(got, want) {
		t.Errorf("after update, Match(call.ended) = %v, want %v", got, want)
	}
	// The result is the caller's to keep.
	got := match(t, s, "t1", "call.ended")
	got[0] = "scribbled"
	if again := match(t, s, "t1", "call.ended"); slices.Contains(again, "scribbled") {
		t.Error("modifying a Match result changed the cache")
	}
}

func TestDisable(t *testing.T) { backends(t, testDisable) }

func testDisable(t *testing.T, e *env) {
	s := e.store(t, true)
	ctx := ctxFor(t, time.Minute)
	ep := create(t, s, "t1", "agent.*")
	if err := s.Disable(ctx, ep.ID, "receiver answered 410 Gone"); err != nil {
		t.Fatal(err)
	}
	if err := s.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if got := match(t, s, "t1", "agent.created"); len(got) != 0 {
		t.Errorf("disabled endpoint still matches: %v", got)
	}
	got, err := s.Endpoint(ctx, ep.ID)
	if err != nil || !got.Disabled || got.DisabledReason != "receiver answered 410 Gone" || got.Version != 2 {
		t.Fatalf("Endpoint = %+v, %v; want disabled with the reason at version 2", got, err)
	}
	if err := s.Disable(ctx, ep.ID, "again"); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Get(ctx, "t1", ep.ID); got.Version != 2 {
		t.Errorf("disabling twice wrote version %d, want it left at 2", got.Version)
	}
	if err := s.Disable(ctx, "ep_000000000000000000000000", "x"); !isNotFound(err) {
		t.Errorf("Disable(unknown) = %v, want ErrNotFound", err)
	}
}

func TestTenantIsolation(t *testing.T) { backends(t, testTenantIsolation) }

func testTenantIsolation(t *testing.T, e *env) {
	s := e.store(t, true)
	ctx := ctxFor(t, time.Minute)
	ep := create(t, s, "t1", "agent.*")
	desc := "mine now"
	if _, err := s.Get(ctx, "t2", ep.ID); !isNotFound(err) {
		t.Errorf("Get as another tenant = %v, want ErrNotFound", err)
	}
	if _, err := s.Update(ctx, "t2", ep.ID, Patch{Description: &desc}); !isNotFound(err) {
		t.Errorf("Update as another tenant = %v, want ErrNotFound", err)
	}
	if _, err := s.RotateSecret(ctx, "t2", ep.ID, time.Hour); !isNotFound(err) {
		t.Errorf("RotateSecret as another tenant = %v, want ErrNotFound", err)
	}
	if err := s.Delete(ctx, "t2", ep.ID); !isNotFound(err) {
		t.Errorf("Delete as another tenant = %v, want ErrNotFound", err)
	}
	if list, _, err := s.List(ctx, "t2", "", 10); err != nil || len(list) != 0 {
		t.Errorf("List as another tenant = %v, %v; want nothing", list, err)
	}
	got, err := s.Get(ctx, "t1", ep.ID)
	if err != nil || got.Description != "" || got.Version != 1 {
		t.Errorf("the owner's endpoint changed: %+v, %v", got, err)
	}
}

func TestListPagination(t *testing.T) { backends(t, testListPagination) }

func testListPagination(t *testing.T, e *env) {
	s := e.store(t, true)
	ctx := ctxFor(t, time.Minute)
	var want []string
	for range 7 {
		want = append(want, create(t, s, "t1", "agent.*").ID)
		time.Sleep(2 * time.Millisecond) // distinct milliseconds: ids then sort by creation
	}
	create(t, s, "t2", "agent.*")
	var got []string
	cursor, pages := "", 0
	for {
		page, next, err := s.List(ctx, "t1", cursor, 3)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, p := range page {
			got = append(got, p.ID)
		}
		if next == "" {
			break
		}
		if len(page) != 3 {
			t.Errorf("page %d has %d endpoints and a next cursor, want 3", pages, len(page))
		}
		cursor = next
	}
	if pages != 3 || !slices.Equal(got, want) {
		t.Errorf("listed %v in %d pages, want %v (creation order) in 3", got, pages, want)
	}
}

func TestUpdate(t *testing.T) { backends(t, testUpdate) }

func testUpdate(t *testing.T, e *env) {
	s := e.store(t, true)
	ctx := ctxFor(t, time.Minute)
	ep := create(t, s, "t1", "agent.*")
	url, desc, rate, none := "https://1.1.1.1/new", "new", 7, OrderingNone
	got, err := s.Update(ctx, "t1", ep.ID, Patch{URL: &url, Description: &desc, RateLimit: &rate, Ordering: &none,
		Headers: map[string]string{"X-Token": "t"}})
	if err != nil {
		t.Fatal(err)
	}
	if got.URL != url || got.Description != desc || got.RateLimit != 7 || got.Ordering != OrderingNone ||
		got.Headers["X-Token"] != "t" || got.Version != 2 || !got.UpdatedAt.After(ep.UpdatedAt) && !got.UpdatedAt.Equal(ep.UpdatedAt) {
		t.Errorf("Update returned %+v", got)
	}
	if got.Secrets[0] != ep.Secrets[0] || !slices.Equal(got.Events, ep.Events) {
		t.Error("Update changed fields the patch did not name")
	}
	got, err = s.Update(ctx, "t1", ep.ID, Patch{Headers: map[string]string{}})
	if err != nil || got.Headers != nil {
		t.Errorf("empty headers patch: %v, %v; want headers removed", got.Headers, err)
	}
	bad := "ftp://x"
	var fe *FieldError
	if _, err := s.Update(ctx, "t1", ep.ID, Patch{URL: &bad}); !errors.As(err, &fe) || fe.Field != "/url" {
		t.Errorf("Update with a bad URL = %v, want FieldError /url", err)
	}
	if _, err := s.Update(ctx, "t1", ep.ID, Patch{Events: []string{}}); !errors.As(err, &fe) || fe.Field != "/events" {
		t.Errorf("Update with no events = %v, want FieldError /events", err)
	}
	stored, _ := s.Get(ctx, "t1", ep.ID)
	if stored.Version != 3 || stored.URL != url {
		t.Errorf("a refused update was stored: %+v", stored)
	}
	// Patches that change nothing write nothing.
	for _, p := range []Patch{{}, {URL: &url, RateLimit: &rate}} {
		if got, err := s.Update(ctx, "t1", ep.ID, p); err != nil || got.Version != 3 {
			t.Errorf("Update(%+v) changing nothing: version %d, %v; want 3 kept", p, got.Version, err)
		}
	}
}

// TestConcurrentUpdatesLoseNothing runs updates of one endpoint from two
// stores at once: each one that succeeds must be one version, so none
// builds on a version another already replaced.
func TestConcurrentUpdatesLoseNothing(t *testing.T) { backends(t, testConcurrentUpdatesLoseNothing) }

func testConcurrentUpdatesLoseNothing(t *testing.T, e *env) {
	a, b := e.store(t, true), e.store(t, true)
	ctx := ctxFor(t, time.Minute)
	ep := create(t, a, "t1", "agent.*")
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok := 0
	for i := range 16 {
		s := a
		if i%2 == 1 {
			s = b
		}
		wg.Go(func() {
			d := fmt.Sprint(i)
			_, err := s.Update(ctx, "t1", ep.ID, Patch{Description: &d})
			switch {
			case err == nil:
				mu.Lock()
				ok++
				mu.Unlock()
			case !errors.Is(err, ErrConflict):
				t.Errorf("Update: %v", err)
			}
		})
	}
	wg.Wait()
	got, err := a.Get(ctx, "t1", ep.ID)
	if err != nil {
		t.Fatal(err)
	}
	if ok == 0 || got.Version != int64(1+ok) {
		t.Errorf("%d updates succeeded and the version is %d, want %d", ok, got.Version, 1+ok)
	}
}

func TestRotateSecret(t *testing.T) { backends(t, testRotateSecret) }

func testRotateSecret(t *testing.T, e *env) {
	s := e.store(t, true)
	ctx := ctxFor(t, time.Minute)
	ep := create(t, s, "t1", "agent.*")
	old := ep.Secrets[0].Value
	now := time.Now()
	got, err := s.RotateSecret(ctx, "t1", ep.ID, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	fresh := got.Secrets[0].Value
	if fresh == old || len(got.Secrets) != 2 || got.Secrets[1].Value != old {
		t.Fatalf("secrets after rotation = %+v, want [new, old]", got.Secrets)
	}
	// The deliverer sees both until the grace period ends, then the new one.
	if err := s.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	seen, err := s.Endpoint(ctx, ep.ID)
	if err != nil {
		t.Fatal(err)
	}
	if a := seen.ActiveSecrets(now.Add(59 * time.Minute)); !slices.Equal(a, []string{fresh, old}) {
		t.Errorf("within grace, active secrets = %v, want [new old]", a)
	}
	if a := seen.ActiveSecrets(now.Add(61 * time.Minute)); !slices.Equal(a, []string{fresh}) {
		t.Errorf("after grace, active secrets = %v, want [new]", a)
	}
	// A write after the grace period drops the expired secret.
	s.now = func() time.Time { return now.Add(2 * time.Hour) }
	desc := "later"
	got, err = s.Update(ctx, "t1", ep.ID, Patch{Description: &desc})
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Secrets) != 1 || got.Secrets[0].Value != fresh {
		t.Errorf("after a later write, secrets = %+v, want only the new one", got.Secrets)
	}
	// Grace 0 replaces the secret at once.
	got, err = s.RotateSecret(ctx, "t1", ep.ID, 0)
	if err != nil || len(got.Secrets) != 1 || got.Secrets[0].Value == fresh {
		t.Errorf("rotation with no grace: %+v, %v; want one new secret", got, err)
	}
	// Many rotations within the grace period keep at most MaxSecrets.
	for range MaxSecrets + 2 {
		if got, err = s.RotateSecret(ctx, "t1", ep.ID, time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	if len(got.Secrets) != MaxSecrets {
		t.Errorf("%d secrets after many rotations, want %d", len(got.Secrets), MaxSecrets)
	}
	var fe *FieldError
	if _, err := s.RotateSecret(ctx, "t1", ep.ID, -time.Second); !errors.As(err, &fe) || fe.Field != "/grace" {
		t.Errorf("negative grace: %v, want FieldError /grace", err)
	}
}

// TestReadYourWritesAcrossStores creates through one store (the api
// process) and matches through another (fanout): right after Refresh, the
// second sees the change, with its in-process cache warm before.
func TestReadYourWritesAcrossStores(t *testing.T) { backends(t, testReadYourWritesAcrossStores) }

func testReadYourWritesAcrossStores(t *testing.T, e *env) {
	a, b := e.store(t, true), e.store(t, true)
	ctx := ctxFor(t, 2*time.Minute)
	base := create(t, a, "t1", "agent.*")
	for i := range 20 {
		if got := match(t, b, "t1", "agent.created"); !sameIDs(got, []string{base.ID}) {
			t.Fatalf("round %d: before create, B matched %v", i, got)
		}
		ep := create(t, a, "t1", "agent.created")
		if err := b.Refresh(ctx); err != nil {
			t.Fatal(err)
		}
		if got := match(t, b, "t1", "agent.created"); !sameIDs(got, []string{base.ID, ep.ID}) {
			t.Fatalf("round %d: after A created %s and B refreshed, B matched %v", i, ep.ID, got)
		}
		if got, err := b.Endpoint(ctx, ep.ID); err != nil || got.ID != ep.ID {
			t.Fatalf("round %d: B.Endpoint = %v, %v", i, got, err)
		}
		if err := a.Delete(ctx, "t1", ep.ID); err != nil {
			t.Fatal(err)
		}
		if err := b.Refresh(ctx); err != nil {
			t.Fatal(err)
		}
		if got := match(t, b, "t1", "agent.created"); slices.Contains(got, ep.ID) {
			t.Fatalf("round %d: after A deleted %s and B refreshed, B still matched it: %v", i, ep.ID, got)
		}
		if _, err := b.Endpoint(ctx, ep.ID); !isNotFound(err) {
			t.Fatalf("round %d: B.Endpoint of a deleted endpoint = %v, want ErrNotFound", i, err)
		}
	}
}

// TestFlushAllReadersWaitForRebuild empties Redis under two running stores
// and checks that readers neither answer from the empty Redis nor from a
// half-built one, and get the full set once a rebuild completes.
func TestFlushAllReadersWaitForRebuild(t *testing.T) { backends(t, testFlushAllReadersWaitForRebuild) }

func testFlushAllReadersWaitForRebuild(t *testing.T, e *env) {
	a, b := e.store(t, true), e.store(t, true)
	ctx := ctxFor(t, 2*time.Minute)
	var want []string
	for i := range 30 {
		ep := create(t, a, fmt.Sprintf("t%d", i%2), "agent.*")
		if i%2 == 0 {
			want = append(want, ep.ID)
		}
	}
	gone := create(t, a, "t0", "agent.*")
	if err := a.Delete(ctx, "t0", gone.ID); err != nil {
		t.Fatal(err)
	}
	if got := match(t, b, "t0", "agent.created"); !sameIDs(got, want) {
		t.Fatalf("before the flush, Match = %v, want %v", got, want)
	}

	// FLUSHALL, and hold the rebuild lock as a slow rebuilder would.
	e.flushAndHoldRebuild(ctx, t, b)
	if err := b.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	ids, err := b.Match(short, "t0", "agent.created")
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Match during the rebuild = %v, %v; want it to wait (DeadlineExceeded)", ids, err)
	}
	short, cancel = context.WithTimeout(ctx, 300*time.Millisecond)
	_, err = a.Get(short, "t0", want[0])
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Get during the rebuild = %v; want it to wait", err)
	}

	// A Match waiting when the rebuild starts returns the full set.
	type result struct {
		ids []string
		err error
	}
	waiting := make(chan result, 1)
	go func() {
		ids, err := b.Match(ctx, "t0", "agent.created")
		waiting <- result{ids, err}
	}()
	e.releaseRebuild(ctx, t, b)
	r := <-waiting
	if r.err != nil || !sameIDs(r.ids, want) {
		t.Fatalf("Match across the rebuild = %v, %v; want %v", r.ids, r.err, want)
	}
	// Another process that starts now sees the same.
	c := e.store(t, true)
	if got := match(t, c, "t0", "agent.created"); !sameIDs(got, want) {
		t.Fatalf("new store after the rebuild: Match = %v, want %v", got, want)
	}
	if _, err := c.Endpoint(ctx, gone.ID); !isNotFound(err) {
		t.Errorf("deleted endpoint after the rebuild: %v, want ErrNotFound", err)
	}
	if got, err := a.Get(ctx, "t0", want[0]); err != nil || got.ID != want[0] {
		t.Errorf("Get after the rebuild = %v, %v", got, err)
	}
}

// TestRebuildOnEmptyRedis starts a store on a new Redis next to a topic
// that already holds creates, updates and deletes.
func TestRebuildOnEmptyRedis(t *testing.T) {
	e := newEnv(t)
	a := e.store(t, true)
	ctx := ctxFor(t, time.Minute)
	kept := create(t, a, "t1", "agent.created")
	changed := create(t, a, "t1", "agent.created")
	deleted := create(t, a, "t1", "agent.created")
	events := []string{"call.*"}
	if _, err := a.Update(ctx, "t1", changed.ID, Patch{Events: events}); err != nil {
		t.Fatal(err)
	}
	if err := a.Delete(ctx, "t1", deleted.ID); err != nil {
		t.Fatal(err)
	}

	fresh := testenvRedis(t)
	c := e.storeOn(t, fresh, true)
	if got, want := match(t, c, "t1", "agent.created"), []string{kept.ID}; !sameIDs(got, want) {
		t.Errorf("rebuilt Match(agent.created) = %v, want %v", got, want)
	}
	if got, want := match(t, c, "t1", "call.ended"), []string{changed.ID}; !sameIDs(got, want) {
		t.Errorf("rebuilt Match(call.ended) = %v, want %v", got, want)
	}
	got, err := c.Get(ctx, "t1", changed.ID)
	if err != nil || got.Version != 2 || !slices.Equal(got.Events, events) || got.Secrets[0] != changed.Secrets[0] {
		t.Errorf("rebuilt Get = %+v, %v; want version 2 with the new events and the secret", got, err)
	}
	if _, err := c.Get(ctx, "t1", deleted.ID); !isNotFound(err) {
		t.Errorf("rebuilt Get of a deleted endpoint = %v, want ErrNotFound", err)
	}
	if list, _, err := c.List(ctx, "t1", "", 10); err != nil || len(list) != 2 {
		t.Errorf("rebuilt List = %d endpoints, %v; want 2", len(list), err)
	}
}

// TestRunRepairsStaleRedis writes endpoint records to Kafka directly, as
// an api process that died between Kafka's ack and its Redis write leaves
// them: Run applies them. A bad record in between does not stop it.
func TestRunRepairsStaleRedis(t *testing.T) { backends(t, testRunRepairsStaleRedis) }

func testRunRepairsStaleRedis(t *testing.T, e *env) {
	s := e.store(t, true)
	ctx := ctxFor(t, time.Minute)
	before := create(t, s, "t1", "agent.*")

	ep := before.clone()
	ep.ID = newID(time.Now())
	raw, _ := json.Marshal(ep)
	cl := e.kafka.Client(t)
	for _, r := range []*kgo.Record{
		{Topic: e.topics.Endpoints, Key: []byte("ep_garbage"), Value: []byte("{not json")},
		{Topic: e.topics.Endpoints, Key: []byte(ep.ID), Value: raw},
		{Topic: e.topics.Endpoints, Key: []byte(before.ID), Value: nil}, // tombstone
	} {
		if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	testenv.Eventually(t, 20*time.Second, "Run to apply the records written behind its back", func() bool {
		if err := s.Refresh(ctx); err != nil {
			t.Fatal(err)
		}
		got := match(t, s, "t1", "agent.created")
		return sameIDs(got, []string{ep.ID})
	})
	if _, err := s.Get(ctx, "t1", before.ID); !isNotFound(err) {
		t.Errorf("Get of the endpoint tombstoned behind the store's back = %v, want ErrNotFound", err)
	}
}

func TestApplyKeepsTheLaterRecord(t *testing.T) { backends(t, testApplyKeepsTheLaterRecord) }

func testApplyKeepsTheLaterRecord(t *testing.T, e *env) {
	s := e.store(t, true)
	ctx := ctxFor(t, time.Minute)
	ep := create(t, s, "t1", "agent.*")
	later, earlier := ep.clone(), ep.clone()
	later.Events, earlier.Events = []string{"call.*"}, []string{"fleet.*"}
	changeOf := func(e *Endpoint, offset int64) change {
		b, _ := json.Marshal(e)
		return change{id: e.ID, offset: offset, value: b, ep: e}
	}
	res, err := s.apply(ctx, []change{changeOf(later, 1000), changeOf(earlier, 999), changeOf(later, 1000), {id: ep.ID, offset: 998}})
	if err != nil {
		t.Fatal(err)
	}
	if want := []int64{applied, superseded, alreadyApplied, superseded}; !slices.Equal(res, want) {
		t.Errorf("apply results = %v, want %v", res, want)
	}
	got, err := s.Get(ctx, "t1", ep.ID)
	if err != nil || !slices.Equal(got.Events, later.Events) {
		t.Errorf("after applying out of order: %+v, %v; want the later record's events", got, err)
	}
}

func TestUnavailable(t *testing.T) {
	e := newEnv(t)
	s := e.store(t, true)
	ctx := ctxFor(t, time.Minute)
	ep := create(t, s, "t1", "agent.*")

	e.kafka.Server.Close()
	s.writeTimeout = time.Second
	_, err := s.Create(ctx, "t1", EndpointInput{URL: "https://1.1.1.1/", Events: []string{"*"}})
	if !errors.Is(err, ErrUnavailable) {
		t.Errorf("Create with Kafka down = %v, want ErrUnavailable", err)
	}
	// Reads need only Redis.
	if got, err := s.Get(ctx, "t1", ep.ID); err != nil || got.ID != ep.ID {
		t.Errorf("Get with Kafka down = %v, %v", got, err)
	}

	e.redis.Stop()
	s.invalidate()
	if _, err := s.Match(ctx, "t1", "agent.created"); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Match with Redis down = %v, want ErrUnavailable", err)
	}
	if _, err := s.Get(ctx, "t1", ep.ID); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Get with Redis down = %v, want ErrUnavailable", err)
	}
}
