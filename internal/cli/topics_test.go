package cli

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/hookstream/hookstream/internal/testenv"
	"github.com/hookstream/hookstream/topic"
)

func TestTopicsCommand(t *testing.T) {
	k := testenv.StartKafkaBrokers(t, 3)
	code, out, errOut := runMain(t, "", "topics", "plan", "--partitions-deliveries", "6")
	if code != 0 || !strings.Contains(out, "hookstream.retries") || !strings.Contains(out, "--partitions 6 --replication-factor 3 --config cleanup.policy=delete --config min.insync.replicas=2 --config retention.ms=1209600000") {
		t.Fatalf("topics plan: exit %d: %s%s", code, out, errOut)
	}
	code, out, errOut = runMain(t, "", "topics", "check", "--kafka-brokers", k.Addr)
	if code != 1 || !strings.Contains(errOut, "hookstream.endpoints: existence is missing") {
		t.Fatalf("topics check before create: exit %d: %s%s", code, out, errOut)
	}
	code, out, errOut = runMain(t, "", "topics", "create", "--kafka-brokers", k.Addr, "--partitions-deliveries", "6")
	if code != 0 || strings.Count(out, "created ") != len(topic.New("hookstream.").All()) || !strings.Contains(out, "topics ok") {
		t.Fatalf("topics create: exit %d: %s%s", code, out, errOut)
	}
	if code, out, errOut = runMain(t, "", "topics", "check", "--kafka-brokers", k.Addr); code != 0 {
		t.Fatalf("topics check after create: exit %d: %s%s", code, out, errOut)
	}
	if code, _, errOut = runMain(t, "", "topics", "create", "--retention-retries", "24h"); code != 2 || !strings.Contains(errOut, "--longest-parking") {
		t.Fatalf("a retries retention shorter than the parking: exit %d: %s", code, errOut)
	}
}

// TestRolesRefuseUnsafeTopics starts each role on topics that can lose
// data: it stops at once, naming the topic, the setting and the fix.
func TestRolesRefuseUnsafeTopics(t *testing.T) {
	k := testenv.StartKafkaBrokers(t, 3)
	r := testenv.StartRedis(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	adm := kadm.NewClient(k.Client(t))
	safe := topic.Settings{Partitions: topic.Partitions{Events: 2, Deliveries: 2, Other: 1}, ReplicationFactor: 3, MinInsyncReplicas: 2}
	// u.: the endpoints topic was created by hand with the default policy.
	specs := topic.Plan(topic.New("u."), safe)
	specs[1].Configs["cleanup.policy"] = "delete"
	// v.: a short retries retention, fine for api and fanout's defaults
	// but not for a deliverer retrying for 30 days.
	short := topic.Plan(topic.New("v."), safe)
	short[3].Configs["retention.ms"] = "86400000"
	for _, s := range [][]topic.Spec{specs, short} {
		if _, err := topic.Create(ctx, adm, s); err != nil {
			t.Fatal(err)
		}
	}
	one := testenv.StartKafka(t) // replication factor 1
	tests := []struct {
		role, prefix, brokers string
		extra                 []string
		want                  []string
	}{
		{"api", "u.", k.Addr, nil, []string{"u.endpoints", "cleanup.policy", "cleanup.policy=compact"}},
		{"fanout", "u.", k.Addr, nil, []string{"u.endpoints", "cleanup.policy"}},
		{"deliverer", "u.", k.Addr, nil, []string{"u.endpoints", "cleanup.policy"}},
		{"indexer", "u.", k.Addr, nil, []string{"u.endpoints", "cleanup.policy"}},
		{"deliverer", "v.", k.Addr, []string{"--disable-after", "720h"}, []string{"v.retries", "retention.ms", "longest parking"}},
		{"fanout", "w.", one.Addr, nil, []string{"w.events", "replication factor", "--allow-unsafe-topics"}},
	}
	for _, tt := range tests {
		args := append([]string{tt.role, "--kafka-brokers", tt.brokers, "--redis-url", r.URL, "--topic-prefix", tt.prefix, "--http-addr", freeAddr(t)}, tt.extra...)
		start := time.Now()
		code, _, errOut := runMain(t, "", args...)
		if code != 1 {
			t.Fatalf("%s on %s: exit %d, want 1: %s", tt.role, tt.prefix, code, errOut)
		}
		for _, w := range append(tt.want, "can lose data") {
			if !strings.Contains(errOut, w) {
				t.Errorf("%s on %s: message lacks %q: %s", tt.role, tt.prefix, w, errOut)
			}
		}
		if d := time.Since(start); d > 20*time.Second {
			t.Errorf("%s took %v to refuse", tt.role, d)
		}
	}
}
