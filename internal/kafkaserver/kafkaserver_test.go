package kafkaserver_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hookstream/hookstream/internal/kafkaserver"
	"github.com/hookstream/hookstream/internal/testenv"
)

// TestDataDirSurvivesRestart: `hookstream kafka --data-dir` promises that
// records and committed offsets survive a restart.
func TestDataDirSurvivesRestart(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	dir := t.TempDir()
	addr := "127.0.0.1:" + itoa(testenv.FreePort(t))

	s1, err := kafkaserver.Start(kafkaserver.WithAddr(addr), kafkaserver.WithDataDir(dir), kafkaserver.WithPartitions(1))
	if err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.DefaultProduceTopic("t"), kgo.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, 1, -1, nil, "t"); err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"a", "b", "c"} {
		if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte(v)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	offs := kadm.Offsets{}
	offs.AddOffset("t", 0, 2, -1)
	if err := kadm.NewClient(cl).CommitAllOffsets(ctx, "g", offs); err != nil {
		t.Fatal(err)
	}
	cl.Close()
	s1.Close()

	s2, err := kafkaserver.Start(kafkaserver.WithAddr(addr), kafkaserver.WithDataDir(dir))
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	cl2, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumerGroup("g"), kgo.ConsumeTopics("t"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl2.Close()
	fs := cl2.PollFetches(ctx)
	if err := fs.Err(); err != nil {
		t.Fatal(err)
	}
	recs := fs.Records()
	if len(recs) != 1 || string(recs[0].Value) != "c" || recs[0].Offset != 2 {
		t.Fatalf("after restart the group resumed at %v, want only record c at offset 2", values(recs))
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

func values(rs []*kgo.Record) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = string(r.Value)
	}
	return out
}
