package cli

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hookstream/hookstream/internal/testenv"
	"github.com/hookstream/hookstream/signature"
)

// TestPipelineOnRedisCluster runs api, fanout and deliverer as their
// commands do, reaching a real 3-master Redis Cluster through
// HOOKSTREAM_REDIS_CLUSTER_ADDRS (one seed node), and publishes events of
// two tenants to four endpoints while their receivers fail some first
// attempts, with a FLUSHALL of every master mid-stream: every event reaches
// every endpoint of its tenant, verified, in publication order.
func TestPipelineOnRedisCluster(t *testing.T) {
	k := testenv.StartKafka(t)
	cluster := testenv.StartRedisCluster(t, 3)
	env := map[string]string{
		"HOOKSTREAM_REDIS_CLUSTER_ADDRS":        cluster.Addrs[1],
		"HOOKSTREAM_API_TOKENS":                 "tok-acme=acme,tok-globex=globex",
		"HOOKSTREAM_ALLOW_PRIVATE_DESTINATIONS": "true",
		"HOOKSTREAM_KAFKA_BROKERS":              k.Addr,
		"HOOKSTREAM_PARTITIONS_EVENTS":          "3",
		"HOOKSTREAM_PARTITIONS_DELIVERIES":      "3",
		"HOOKSTREAM_SHUTDOWN_GRACE":             "5s",
		"HOOKSTREAM_LOG_FORMAT":                 "text",
	}
	base, _ := startRole(t, "api", env, "--http-addr", freeAddr(t))
	startRole(t, "fanout", env, "--http-addr", freeAddr(t), "--session-timeout", "6s")
	startRole(t, "deliverer", env, "--http-addr", freeAddr(t), "--session-timeout", "6s",
		"--retry-schedule", "0s,50ms,100ms,200ms,400ms", "--drain-timeout", "500ms")

	type endpoint struct {
		tenant, token, id string
		rc                *clusterReceiver
	}
	var eps []*endpoint
	for _, tenant := range []string{"acme", "globex"} {
		for range 2 {
			rc := newClusterReceiver(t)
			var created struct{ ID, Secret string }
			if code := apiCall(t, http.MethodPost, base+"/v1/endpoints", "tok-"+tenant,
				map[string]any{"url": rc.srv.URL + "/hook", "events": []string{"agent.*"}}, &created); code != http.StatusCreated {
				t.Fatalf("create endpoint for %s: %d", tenant, code)
			}
			rc.setSecret(created.Secret)
			eps = append(eps, &endpoint{tenant, "tok-" + tenant, created.ID, rc})
		}
	}
	published := map[string][]string{} // tenant -> event ids in publication order
	publish := func(batches int) {
		t.Helper()
		for b := range batches {
			for _, tenant := range []string{"acme", "globex"} {
				var batch []map[string]any
				for i := range 20 {
					batch = append(batch, map[string]any{"event": "agent.created",
						"data": map[string]any{"agent_id": fmt.Sprintf("agt_%d_%d", b, i), "name": "n", "model": "m", "created_by": 1}})
				}
				var out struct{ IDs []string }
				if code := apiCall(t, http.MethodPost, base+"/v1/events", "tok-"+tenant, batch, &out); code != http.StatusAccepted || len(out.IDs) != 20 {
					t.Fatalf("publish for %s: %d, %d ids", tenant, code, len(out.IDs))
				}
				published[tenant] = append(published[tenant], out.IDs...)
			}
		}
	}
	publish(5)
	testenv.Eventually(t, time.Minute, "some deliveries before the flush", func() bool { return eps[0].rc.count() > 0 })
	cluster.FlushAll(t)
	publish(5)

	for _, ep := range eps {
		want := published[ep.tenant]
		testenv.Eventually(t, 2*time.Minute, fmt.Sprintf("%d events at %s", len(want), ep.id), func() bool {
			return ep.rc.count() >= len(want)
		})
		if got := ep.rc.delivered(); !slices.Equal(got, want) {
			t.Errorf("endpoint %s (%s): %d deliveries, want %d in publication order; first difference at %d",
				ep.id, ep.tenant, len(got), len(want), firstDifference(got, want))
		}
		if bad := ep.rc.unverified(); bad > 0 {
			t.Errorf("endpoint %s: %d requests failed signature verification", ep.id, bad)
		}
	}
}

func firstDifference(a, b []string) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// clusterReceiver verifies each webhook's signature, fails the first attempt
// of every fifth event (500), and records the event ids it accepted in
// arrival order.
type clusterReceiver struct {
	srv *httptest.Server

	mu      sync.Mutex
	secret  string
	tries   map[string]int
	ok      []string
	badSigs int
}

func newClusterReceiver(t *testing.T) *clusterReceiver {
	rc := &clusterReceiver{tries: map[string]int{}}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		defer rc.mu.Unlock()
		if err := signature.Verify(r.Header, body, []string{rc.secret}); err != nil {
			rc.badSigs++
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		id := r.Header.Get(signature.HeaderID)
		rc.tries[id]++
		if rc.tries[id] == 1 && len(rc.tries)%5 == 0 {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		rc.ok = append(rc.ok, id)
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *clusterReceiver) setSecret(s string) { rc.mu.Lock(); rc.secret = s; rc.mu.Unlock() }

func (rc *clusterReceiver) count() int { rc.mu.Lock(); defer rc.mu.Unlock(); return len(rc.ok) }

func (rc *clusterReceiver) delivered() []string {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return slices.Clone(rc.ok)
}

func (rc *clusterReceiver) unverified() int { rc.mu.Lock(); defer rc.mu.Unlock(); return rc.badSigs }
