package api_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/hookstream/hookstream/internal/api"
	"github.com/hookstream/hookstream/internal/testenv"
	"github.com/hookstream/hookstream/schemas"
	"github.com/hookstream/hookstream/subscription"
	"github.com/hookstream/hookstream/topic"
)

// TestEndpointsQuota: a create past the tenant's endpoint quota is a 422
// that says so; another tenant can still create.
func TestEndpointsQuota(t *testing.T) {
	cat, err := schemas.Load()
	if err != nil {
		t.Fatal(err)
	}
	k := testenv.StartKafka(t)
	k.CreateTopics(t, "hookstream.", topic.Partitions{Events: 1, Deliveries: 1, Other: 1})
	rdb := redis.NewClient(&redis.Options{Addr: testenv.StartRedis(t).Addr})
	t.Cleanup(func() { _ = rdb.Close() })
	store := subscription.NewStore(k.Client(t), rdb, cat, subscription.WithLogger(quiet), subscription.WithMaxEndpoints(2))
	testenv.Run(t, store)
	srv := httptest.NewServer(api.New(api.WithTokens(epTokens), api.WithCatalog(cat), api.WithEndpoints(store), api.WithLogger(quiet)).Handler())
	t.Cleanup(srv.Close)

	for i := range 2 {
		if r := epDo(t, "POST", srv.URL+"/v1/endpoints", "tok-acme", epCreateBody); r.status != http.StatusCreated {
			t.Fatalf("create %d: %d %s", i+1, r.status, r.body)
		}
	}
	r := epDo(t, "POST", srv.URL+"/v1/endpoints", "tok-acme", epCreateBody)
	if code, _ := r.errorField(t); r.status != http.StatusUnprocessableEntity || code != api.CodeInvalid {
		t.Fatalf("create past the quota: %d %s, want 422 %s", r.status, r.body, api.CodeInvalid)
	}
	if r := epDo(t, "POST", srv.URL+"/v1/endpoints", "tok-other", epCreateBody); r.status != http.StatusCreated {
		t.Fatalf("another tenant's create: %d %s", r.status, r.body)
	}
}
