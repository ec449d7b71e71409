package topic_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/hookstream/hookstream/internal/testenv"
	"github.com/hookstream/hookstream/topic"
)

func TestEnsure(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	k := testenv.StartKafka(t)
	adm := kadm.NewClient(k.Client(t))
	names := topic.New("x.")
	p := topic.Partitions{Events: 3, Deliveries: 4, Other: 1}
	for range 2 { // the second call finds everything and changes nothing
		if err := topic.Ensure(ctx, adm, names, p); err != nil {
			t.Fatal(err)
		}
	}
	details, err := adm.ListTopics(ctx, names.All()...)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int{names.Events: 3, names.Deliveries: 4, names.Retries: 4, names.Endpoints: 1, names.Attempts: 1, names.Dead: 1, names.Matches: 1}
	for name, n := range want {
		if got := len(details[name].Partitions); got != n {
			t.Errorf("%s has %d partitions, want %d", name, got, n)
		}
	}
	cfgs, err := adm.DescribeTopicConfigs(ctx, names.Endpoints)
	if err != nil {
		t.Fatal(err)
	}
	policy := ""
	for _, c := range cfgs[0].Configs {
		if c.Key == "cleanup.policy" && c.Value != nil {
			policy = *c.Value
		}
	}
	if policy != "compact" {
		t.Fatalf("endpoints cleanup.policy = %q, want compact", policy)
	}
}

func TestEnsureRefusesMismatchedPartitions(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	k := testenv.StartKafka(t)
	adm := kadm.NewClient(k.Client(t))
	names := topic.New("y.")
	if _, err := adm.CreateTopic(ctx, 2, -1, nil, names.Retries); err != nil {
		t.Fatal(err)
	}
	err := topic.Ensure(ctx, adm, names, topic.Partitions{Events: 1, Deliveries: 4, Other: 1})
	if !errors.Is(err, topic.ErrPartitionMismatch) {
		t.Fatalf("err = %v, want ErrPartitionMismatch", err)
	}
}
