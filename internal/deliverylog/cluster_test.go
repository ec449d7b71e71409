package deliverylog_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/hookstream/hookstream/deliverer"
	"github.com/hookstream/hookstream/internal/deliverylog"
	"github.com/hookstream/hookstream/internal/testenv"
)

// newClusterEnv is newEnv with the index in a 3-master Redis Cluster.
func newClusterEnv(t *testing.T) *env {
	t.Helper()
	e := &env{kafka: testenv.StartKafka(t), cluster: testenv.StartRedisCluster(t, 3)}
	return e.withTopics(t)
}

// clusterIndexer is env.indexer writing to the env's Redis Cluster.
func (e *env) clusterIndexer() *deliverylog.Indexer {
	return deliverylog.NewIndexer(deliverylog.IndexerConfig{
		Seeds: []string{e.kafka.Addr}, Topic: e.topics.Attempts, Dead: e.topics.Dead, CheckEvery: 100 * time.Millisecond,
	}, e.cluster.Client)
}

// TestClusterRebuildAfterFlush indexes several tenants' attempts in a
// Redis Cluster (each tenant's keys in its own slot, spread over the
// masters), runs FLUSHALL on every master while attempts arrive, and
// checks that every attempt is indexed again exactly once, queries work
// per tenant and no tenant sees another's.
func TestClusterRebuildAfterFlush(t *testing.T) {
	e := newClusterEnv(t)
	x := e.clusterIndexer()
	testenv.Run(t, x)
	ix := x.Index()
	tenants := []string{"acme", "globex", "initech", "umbrella", "hooli", "stark"}
	produce := func(n int) {
		for i, tenant := range tenants {
			e.produce(t, tenant, "ep_"+tenant, n, func(j int, a *deliverer.Attempt) {
				if (i+j)%3 == 0 {
					a.Outcome, a.Status, a.ErrorClass = "failed", 503, "http_status"
				}
			})
		}
	}
	indexed := func(want int) func() bool {
		return func() bool {
			for _, tenant := range tenants {
				if len(all(t, ix, tenant, "ep_"+tenant, deliverylog.Filter{})) != want {
					return false
				}
			}
			return true
		}
	}
	produce(50)
	testenv.Eventually(t, 30*time.Second, "50 attempts of every tenant indexed", indexed(50))
	if n := e.cluster.Masters(t); n != 3 {
		t.Fatalf("the index is on %d of 3 masters: the test would not cover a cluster", n)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 5 {
			produce(10)
		}
	}()
	time.Sleep(20 * time.Millisecond)
	e.cluster.FlushAll(t)
	<-done
	testenv.Eventually(t, 60*time.Second, "100 attempts of every tenant indexed again", indexed(100))
	ctx := context.Background()
	for i, tenant := range tenants {
		got := all(t, ix, tenant, "ep_"+tenant, deliverylog.Filter{})
		exactlyOnce(t, got, 100)
		failed := all(t, ix, tenant, "ep_"+tenant, deliverylog.Filter{CodeClass: 5})
		if len(failed) == 0 || len(failed) == len(got) {
			t.Errorf("%s: %d of %d attempts in 5xx, want some", tenant, len(failed), len(got))
		}
		one, err := ix.Attempt(ctx, tenant, got[0].ID)
		if err != nil || one.ID != got[0].ID {
			t.Errorf("%s: Attempt(%s) = %+v, %v", tenant, got[0].ID, one, err)
		}
		if pg, err := ix.EventAttempts(ctx, tenant, one.EventID, deliverylog.Query{}); err != nil || len(pg.Data) != 1 {
			t.Errorf("%s: EventAttempts = %d, %v, want 1", tenant, len(pg.Data), err)
		}
		other := tenants[(i+1)%len(tenants)]
		if _, err := ix.Attempt(ctx, other, got[0].ID); !errors.Is(err, deliverylog.ErrNotFound) {
			t.Errorf("%s's attempt read as %s: %v, want ErrNotFound", tenant, other, err)
		}
	}
	t.Logf("%d tenants x 100 attempts indexed once across a FLUSHALL of every master", len(tenants))
}
