package cli

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hookstream/hookstream/internal/kafkaacl"
	"github.com/hookstream/hookstream/internal/testenv"
	"github.com/hookstream/hookstream/signature"
	"github.com/hookstream/hookstream/topic"
)

// pipelineRoles are the long-running roles, each with a principal of its own.
var pipelineRoles = []string{"api", "fanout", "deliverer", "indexer"}

func TestKafkaACLsCommand(t *testing.T) {
	code, out, errOut := runMain(t, "", "kafka-acls", "--role", "fanout", "--principal", "User:hs-fanout", "--topic-prefix", "p.")
	for _, want := range []string{
		"kafka-acls.sh --bootstrap-server <brokers> --add --allow-principal User:hs-fanout --group hookstream-fanout --operation Read",
		"--transactional-id hookstream-fanout- --resource-pattern-type prefixed --operation Write",
		"--topic p.events --operation Read",
		"--topic p. --resource-pattern-type prefixed --operation Describe --operation DescribeConfigs",
	} {
		if code != 0 || !strings.Contains(out, want) {
			t.Fatalf("kafka-acls: exit %d, output lacks %q: %s%s", code, want, out, errOut)
		}
	}
	for _, args := range [][]string{{"--role", "fanout"}, {"--role", "nope", "--principal", "User:x"}} {
		if code, _, errOut := runMain(t, "", append([]string{"kafka-acls"}, args...)...); code != 2 {
			t.Errorf("kafka-acls %v: exit %d, want 2: %s", args, code, errOut)
		}
	}
}

// orderReceiver records, in arrival order, each webhook's id and status;
// it fails the first attempt of one event, so that order must hold across
// a retry.
type orderReceiver struct {
	*httptest.Server
	secret  string
	failID  string // set once the event is published
	mu      sync.Mutex
	arrived []string // ids answered 2xx, in order
	failed  bool
	bad     []error
}

func (o *orderReceiver) handle(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	o.mu.Lock()
	defer o.mu.Unlock()
	if err := signature.Verify(r.Header, body, []string{o.secret}); err != nil {
		o.bad = append(o.bad, err)
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	id := r.Header.Get(signature.HeaderID)
	if id == o.failID && !o.failed {
		o.failed = true
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	o.arrived = append(o.arrived, id)
	w.WriteHeader(http.StatusNoContent)
}

func (o *orderReceiver) snapshot() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]string(nil), o.arrived...)
}

// TestPipelineOnSecuredKafka runs the whole pipeline on a three-broker
// cluster that takes only TLS + SCRAM and enforces ACLs, each role under a
// principal holding only the ACLs `hookstream kafka-acls --apply` gave it,
// on topics `hookstream topics create` made: every event arrives, signed,
// in order, a retried one included.
//
// It runs on a single redis-server and on a 3-master Redis Cluster
// (--redis-cluster-addrs), so the whole pipeline is shown on TLS + SCRAM +
// ACLs and a Redis Cluster.
func TestPipelineOnSecuredKafka(t *testing.T) {
	for _, backend := range []string{"single", "cluster"} {
		t.Run("redis-"+backend, func(t *testing.T) { testPipelineOnSecuredKafka(t, backend == "cluster") })
	}
}

func testPipelineOnSecuredKafka(t *testing.T, redisCluster bool) {
	k := testenv.StartSecureKafka(t, 3)
	redisFlags := func() []string {
		if redisCluster {
			return []string{"--redis-cluster-addrs", testenv.StartRedisCluster(t, 3).Addrs[0]}
		}
		return []string{"--redis-url", testenv.StartRedis(t).URL}
	}()
	admin := k.Flags(testenv.SecureAdminUser, testenv.SecureAdminPass)
	if code, out, errOut := runMain(t, "", append([]string{"topics", "create", "--partitions-events", "2", "--partitions-deliveries", "2", "--partitions-other", "1"}, admin...)...); code != 0 {
		t.Fatalf("topics create: exit %d: %s%s", code, out, errOut)
	}
	flags := map[string][]string{}
	for _, role := range pipelineRoles {
		user, pw := "hs-"+role, "pw-"+role+"-"+randomHex(t)
		k.AddUser(t, user, pw)
		code, out, errOut := runMain(t, "", append([]string{"kafka-acls", "--role", role, "--principal", "User:" + user, "--apply"}, admin...)...)
		if code != 0 || !strings.Contains(out, "allowed User:"+user) {
			t.Fatalf("kafka-acls --apply %s: exit %d: %s%s", role, code, out, errOut)
		}
		flags[role] = append(append(k.Flags(user, pw), redisFlags...), "--shutdown-grace", "5s", "--http-addr", freeAddr(t))
	}
	token := "tok_" + randomHex(t)
	apiBase, _ := startRole(t, "api", map[string]string{"HOOKSTREAM_API_TOKENS": token + "=acme"}, append(flags["api"], "--allow-private-destinations")...)
	startRole(t, "fanout", nil, flags["fanout"]...)
	startRole(t, "deliverer", nil, append(flags["deliverer"], "--allow-private-destinations", "--drain-timeout", "1s", "--retry-schedule", "0s,200ms,400ms,800ms")...)
	startRole(t, "indexer", nil, flags["indexer"]...)

	recv := &orderReceiver{}
	recv.Server = httptest.NewServer(http.HandlerFunc(recv.handle))
	t.Cleanup(recv.Close)
	var ep struct{ Secret string }
	if code := apiCall(t, http.MethodPost, apiBase+"/v1/endpoints", token, map[string]any{"url": recv.URL, "events": []string{"agent.*"}}, &ep); code != http.StatusCreated {
		t.Fatalf("create endpoint: %d", code)
	}
	recv.mu.Lock()
	recv.secret = ep.Secret
	recv.mu.Unlock()
	const n = 20
	var ids []string
	for i := range n {
		var ev struct{ ID string }
		if code := apiCall(t, http.MethodPost, apiBase+"/v1/events", token, map[string]any{"event": "agent.created",
			"data": map[string]any{"agent_id": fmt.Sprintf("agt_%d", i), "name": "n", "model": "m", "created_by": 1}}, &ev); code != http.StatusAccepted {
			t.Fatalf("POST /v1/events %d: %d", i, code)
		}
		ids = append(ids, ev.ID)
		if i == 4 {
			recv.mu.Lock()
			recv.failID = ev.ID
			recv.mu.Unlock()
		}
	}
	testenv.Eventually(t, 2*time.Minute, "every event delivered", func() bool { return len(recv.snapshot()) >= n })
	got := recv.snapshot()
	if strings.Join(got, ",") != strings.Join(ids, ",") {
		t.Fatalf("delivered in order\n%v\nwant\n%v", got, ids)
	}
	recv.mu.Lock()
	defer recv.mu.Unlock()
	if !recv.failed || len(recv.bad) > 0 {
		t.Fatalf("the retried event was not failed once (%v) or signatures were bad: %v", recv.failed, recv.bad)
	}
}

// TestRoleMissingACL starts each role under a principal holding all its
// documented ACLs but one: the role stops at start, promptly, naming the
// missing permission.
func TestRoleMissingACL(t *testing.T) {
	k := testenv.StartSecureKafka(t, 1)
	r := testenv.StartRedis(t)
	admin := k.Flags(testenv.SecureAdminUser, testenv.SecureAdminPass)
	if code, out, errOut := runMain(t, "", append([]string{"topics", "create", "--replication-factor", "1", "--min-insync-replicas", "0",
		"--partitions-events", "1", "--partitions-deliveries", "1", "--partitions-other", "1", "--allow-unsafe-topics"}, admin...)...); code != 0 {
		t.Fatalf("topics create: exit %d: %s%s", code, out, errOut)
	}
	for _, role := range pipelineRoles {
		grants, err := kafkaacl.Grants(role, aclNames(topic.DefaultPrefix))
		if err != nil {
			t.Fatal(err)
		}
		for i, removed := range grants {
			user := fmt.Sprintf("%s-%d", role, i)
			k.AddUser(t, user, "pw")
			for j, b := range kafkaacl.Builders(grants, "User:"+user) {
				if j != i {
					k.Grant(t, b)
				}
			}
			row := removed.Row() // resource, pattern, operations
			var wants []string   // one of the operations on the resource
			for _, op := range strings.Split(row[2], ", ") {
				wants = append(wants, op+" on "+strings.TrimSuffix(row[0], "*"))
			}
			args := append([]string{role, "--api-tokens", "t=acme", "--redis-url", r.URL, "--http-addr", freeAddr(t), "--allow-unsafe-topics"}, k.Flags(user, "pw")...)
			if role != "api" {
				args = slices.DeleteFunc(args, func(a string) bool { return a == "--api-tokens" || a == "t=acme" })
			}
			start := time.Now()
			code, _, errOut := runMain(t, "", args...)
			took := time.Since(start)
			named := slices.ContainsFunc(wants, func(w string) bool { return strings.Contains(errOut, w) })
			if code != 1 || !strings.Contains(errOut, "lacks permissions") || !named {
				t.Errorf("%s without %v: exit %d, want 1 and a message naming one of %q: %s", role, row, code, wants, errOut)
			}
			if took > 30*time.Second {
				t.Errorf("%s without %v took %v to stop", role, row, took)
			}
		}
	}
}
