package subscription

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hookstream/hookstream/internal/testenv"
	"github.com/hookstream/hookstream/schemas"
	"github.com/hookstream/hookstream/topic"
)

// env is one Kafka and one Redis shared by the stores of a test, as the
// processes of one deployment share them.
type env struct {
	kafka   *testenv.Kafka
	redis   *testenv.Redis
	cluster *testenv.RedisCluster // set: the stores use this Redis Cluster instead
	catalog *schemas.Catalog
	topics  topic.Names
}

const testPrefix = "hookstream."

func newEnv(t testing.TB) *env {
	t.Helper()
	cat, err := schemas.Load()
	if err != nil {
		t.Fatalf("schemas.Load: %v", err)
	}
	k := testenv.StartKafka(t)
	names := k.CreateTopics(t, testPrefix, topic.Partitions{Events: 3, Deliveries: 3, Other: 3})
	return &env{kafka: k, redis: testenv.StartRedis(t), catalog: cat, topics: names}
}

// store returns a store with its own Kafka and Redis clients, as another
// process would have. run starts its Run until the test ends.
func (e *env) store(t testing.TB, run bool, opts ...Option) *Store {
	t.Helper()
	if e.cluster != nil {
		return e.storeWith(t, e.cluster.NewClient(), run, opts...)
	}
	return e.storeOn(t, e.redis.Addr, run, opts...)
}

func (e *env) storeOn(t testing.TB, redisAddr string, run bool, opts ...Option) *Store {
	t.Helper()
	return e.storeWith(t, redis.NewClient(&redis.Options{Addr: redisAddr}), run, opts...)
}

func (e *env) storeWith(t testing.TB, rdb redis.UniversalClient, run bool, opts ...Option) *Store {
	t.Helper()
	t.Cleanup(func() { _ = rdb.Close() })
	opts = append([]Option{WithTopicPrefix(testPrefix), WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))}, opts...)
	s := NewStore(e.kafka.Client(t), rdb, e.catalog, opts...)
	if run {
		testenv.Run(t, s)
	}
	return s
}

func ctxFor(t testing.TB, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// create creates an endpoint or fails the test.
func create(t testing.TB, s *Store, tenant string, events ...string) *Endpoint {
	t.Helper()
	e, err := s.Create(ctxFor(t, 30*time.Second), tenant, EndpointInput{URL: "https://93.184.215.14/hook", Events: events})
	if err != nil {
		t.Fatalf("Create(%s, %v): %v", tenant, events, err)
	}
	return e
}

func match(t testing.TB, s *Store, tenant, eventType string) []string {
	t.Helper()
	ids, err := s.Match(ctxFor(t, 30*time.Second), tenant, eventType)
	if err != nil {
		t.Fatalf("Match(%s, %s): %v", tenant, eventType, err)
	}
	return ids
}

func sorted(ids ...string) []string {
	out := slices.Clone(ids)
	slices.Sort(out)
	if out == nil {
		out = []string{}
	}
	return out
}

func sameIDs(got, want []string) bool {
	return slices.Equal(sorted(got...), sorted(want...))
}

func isNotFound(err error) bool { return errors.Is(err, ErrNotFound) }

type redisPipeliner = redis.Pipeliner

// testenvRedis starts another, empty redis-server and returns its address.
func testenvRedis(t testing.TB) string {
	t.Helper()
	return testenv.StartRedis(t).Addr
}
