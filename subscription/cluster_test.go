package subscription

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hookstream/hookstream/internal/testenv"
	"github.com/hookstream/hookstream/schemas"
	"github.com/hookstream/hookstream/topic"
)

// newClusterEnv is newEnv with a 3-master Redis Cluster in place of the
// single redis-server.
func newClusterEnv(t testing.TB) *env {
	t.Helper()
	cat, err := schemas.Load()
	if err != nil {
		t.Fatalf("schemas.Load: %v", err)
	}
	k := testenv.StartKafka(t)
	names := k.CreateTopics(t, testPrefix, topic.Partitions{Events: 3, Deliveries: 3, Other: 3})
	return &env{kafka: k, cluster: testenv.StartRedisCluster(t, 3), catalog: cat, topics: names}
}

// backends runs test against a single redis-server and a Redis Cluster.
func backends(t *testing.T, test func(t *testing.T, e *env)) {
	for _, b := range []struct {
		name string
		env  func(testing.TB) *env
	}{{"single", newEnv}, {"cluster", newClusterEnv}} {
		t.Run(b.name, func(t *testing.T) { test(t, b.env(t)) })
	}
}

// flushAndHoldRebuild empties Redis (every master of a cluster) and, in
// the same transaction on the node of the store's keys, takes the rebuild
// lock as a slow rebuilder would.
func (e *env) flushAndHoldRebuild(ctx context.Context, t testing.TB, s *Store) {
	t.Helper()
	var rdb redis.Cmdable
	if e.cluster != nil {
		e.cluster.FlushAll(t)
		m, err := e.cluster.Client.MasterForKey(ctx, s.keys.rebuildLock)
		if err != nil {
			t.Fatal(err)
		}
		rdb = m
	} else {
		rdb = e.redis.Client
	}
	if _, err := rdb.TxPipelined(ctx, func(p redisPipeliner) error {
		p.FlushAll(ctx)
		p.Set(ctx, s.keys.rebuildLock, "a-slow-rebuilder", time.Minute)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// releaseRebuild drops the lock flushAndHoldRebuild took.
func (e *env) releaseRebuild(ctx context.Context, t testing.TB, s *Store) {
	t.Helper()
	var err error
	if e.cluster != nil {
		err = e.cluster.Client.Del(ctx, s.keys.rebuildLock).Err()
	} else {
		err = e.redis.Client.Del(ctx, s.keys.rebuildLock).Err()
	}
	if err != nil {
		t.Fatal(err)
	}
}
