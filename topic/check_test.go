package topic_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/hookstream/hookstream/internal/testenv"
	"github.com/hookstream/hookstream/topic"
)

// TestCheck creates each case's topics on a three-broker cluster and checks
// that Check names exactly the unsafe setting, with its topic and a fix.
func TestCheck(t *testing.T) {
	k := testenv.StartKafkaBrokers(t, 3)
	adm := kadm.NewClient(k.Client(t))
	safe := topic.Settings{Partitions: topic.Partitions{Events: 3, Deliveries: 4, Other: 1}, ReplicationFactor: 3, MinInsyncReplicas: 2}
	parking := 6 * 24 * time.Hour
	tests := []struct {
		name    string
		edit    func(specs []topic.Spec) []topic.Spec // index: events, endpoints, deliveries, retries, attempts, dead
		unsafe  bool
		allow   bool   // --allow-unsafe-topics
		topic   string // suffix of the topic named
		setting string
	}{
		{name: "safe"},
		{name: "endpoints not compacted", edit: func(s []topic.Spec) []topic.Spec { s[1].Configs["cleanup.policy"] = "delete"; return s },
			unsafe: true, topic: "endpoints", setting: "cleanup.policy"},
		{name: "endpoints compacted and deleted", edit: func(s []topic.Spec) []topic.Spec { s[1].Configs["cleanup.policy"] = "compact,delete"; return s },
			unsafe: true, topic: "endpoints", setting: "cleanup.policy"},
		{name: "retries partitions differ", edit: func(s []topic.Spec) []topic.Spec { s[3].Partitions = 2; return s },
			unsafe: true, topic: "retries", setting: "partition count"},
		{name: "retries retention too short", edit: func(s []topic.Spec) []topic.Spec { s[3].Configs["retention.ms"] = "86400000"; return s },
			unsafe: true, topic: "retries", setting: "retention.ms"},
		{name: "retries kept forever", edit: func(s []topic.Spec) []topic.Spec { s[3].Configs["retention.ms"] = "-1"; return s }},
		{name: "replication factor 1", edit: func(s []topic.Spec) []topic.Spec {
			s[0].ReplicationFactor = 1
			delete(s[0].Configs, "min.insync.replicas")
			return s
		},
			unsafe: true, topic: "events", setting: "replication factor"},
		{name: "replication factor 1 allowed", edit: func(s []topic.Spec) []topic.Spec {
			s[0].ReplicationFactor = 1
			delete(s[0].Configs, "min.insync.replicas")
			return s
		},
			allow: true},
		{name: "min.insync.replicas 1 warns only", edit: func(s []topic.Spec) []topic.Spec { s[5].Configs["min.insync.replicas"] = "1"; return s },
			topic: "dead", setting: "min.insync.replicas"},
		{name: "topic missing", edit: func(s []topic.Spec) []topic.Spec {
			return slices.DeleteFunc(s, func(sp topic.Spec) bool { return strings.HasSuffix(sp.Name, ".dead") })
		},
			unsafe: true, topic: "dead", setting: "existence"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			names := topic.New(strings.Repeat("c", i+1) + ".")
			specs := topic.Plan(names, safe)
			if tt.edit != nil {
				specs = tt.edit(specs)
			}
			if _, err := topic.Create(ctx, adm, specs); err != nil {
				t.Fatal(err)
			}
			ps, err := topic.Check(ctx, adm, names, topic.Requirements{MinRetriesRetention: parking, AllowUnsafe: tt.allow})
			if err != nil {
				t.Fatal(err)
			}
			err = topic.Unsafe(ps)
			if tt.unsafe != (err != nil) || err != nil && !errors.Is(err, topic.ErrUnsafe) {
				t.Fatalf("Unsafe = %v, want unsafe %v (problems %v)", err, tt.unsafe, ps)
			}
			if tt.setting == "" {
				if len(ps) != 0 {
					t.Fatalf("problems %v, want none", ps)
				}
				return
			}
			if len(ps) != 1 || ps[0].Topic != names.All()[indexOf(tt.topic)] || ps[0].Setting != tt.setting || ps[0].Fix == "" {
				t.Fatalf("problems %v, want one on %s's %s with a fix", ps, tt.topic, tt.setting)
			}
			if tt.unsafe && !strings.Contains(err.Error(), ps[0].Topic) {
				t.Fatalf("error %q does not name the topic", err)
			}
		})
	}
}

func indexOf(suffix string) int {
	for i, s := range []string{"events", "endpoints", "deliveries", "retries", "attempts", "dead"} {
		if s == suffix {
			return i
		}
	}
	return -1
}

// TestCreateLeavesExistingTopics: a topic that exists keeps its settings,
// and only the missing ones are reported created.
func TestCreateLeavesExistingTopics(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	k := testenv.StartKafkaBrokers(t, 3)
	adm := kadm.NewClient(k.Client(t))
	names := topic.New("e.")
	if _, err := adm.CreateTopic(ctx, 5, 3, nil, names.Events); err != nil {
		t.Fatal(err)
	}
	created, err := topic.Create(ctx, adm, topic.Plan(names, topic.Settings{Partitions: topic.Partitions{Events: 2, Deliveries: 2, Other: 1}, ReplicationFactor: 3}))
	if err != nil {
		t.Fatal(err)
	}
	if len(created) != len(names.All())-1 || created[0] != names.Endpoints {
		t.Fatalf("created %v, want every topic but %s", created, names.Events)
	}
	d, err := adm.ListTopics(ctx, names.Events, names.Dead)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(d[names.Events].Partitions); n != 5 {
		t.Fatalf("%s has %d partitions, want its own 5", names.Events, n)
	}
	if rf := len(d[names.Dead].Partitions[0].Replicas); rf != 3 {
		t.Fatalf("%s has replication factor %d, want 3", names.Dead, rf)
	}
}
