package producer_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/hookstream/hookstream/envelope"
	"github.com/hookstream/hookstream/internal/testenv"
	"github.com/hookstream/hookstream/producer"
)

const eventsTopic = "hookstream.events"

// spread returns n events whose keys land on at least two partitions, and
// the partition of the middle one, which the tests fail.
func spread(t *testing.T, k *testenv.Kafka, size int) ([]producer.Event, int32) {
	t.Helper()
	n := len(k.Server.Cluster().PartitionInfos(eventsTopic))
	part := kgo.StickyKeyPartitioner(nil).ForTopic(eventsTopic)
	events := make([]producer.Event, size)
	parts := map[int32]bool{}
	for i := range events {
		events[i] = producer.Event{Type: "agent.created", Data: []byte(created), Key: fmt.Sprintf("k%d", i)}
		parts[int32(part.Partition(&kgo.Record{Key: []byte(events[i].Key)}, n))] = true
	}
	if len(parts) < 2 {
		t.Fatalf("the keys land on %d partition(s); want a batch spanning several", len(parts))
	}
	return events, int32(part.Partition(&kgo.Record{Key: []byte(events[size/2].Key)}, n))
}

// TestPublishBatchAllOrNothing fails the produce to one partition in the
// middle of a batch: PublishBatch must fail, and a read_committed reader
// must see none of the batch, including the records Kafka acknowledged on
// the other partitions. The client is then reused for a batch that works.
func TestPublishBatchAllOrNothing(t *testing.T) {
	tests := []struct {
		name    string
		err     *kerr.Error
		timeout time.Duration // the caller's deadline
		is      error         // what the error must wrap, or nil
		not     error         // what it must not wrap, or nil
	}{
		{"retriable error until the delivery timeout", kerr.NotEnoughReplicas, time.Minute, nil, producer.ErrRejected},
		{"caller gives up first", kerr.NotEnoughReplicas, 500 * time.Millisecond, context.DeadlineExceeded, producer.ErrOutcomeUnknown},
		{"permanent error", kerr.TopicAuthorizationFailed, time.Minute, producer.ErrRejected, producer.ErrOutcomeUnknown},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := testenv.StartKafka(t)
			p := producer.New(k.Client(t, producer.ClientOpts(2*time.Second)...), catalog(t), producer.WithBatchClients(1))
			t.Cleanup(p.Close)
			if err := p.EnsureTopics(context.Background()); err != nil {
				t.Fatal(err)
			}
			events, bad := spread(t, k, 9)
			fault := k.Server.Cluster().Fault(kfake.Fault{
				Keys: []kmsg.Key{kmsg.Produce}, Topic: eventsTopic, Partitions: []int32{bad}, Err: tt.err, Count: -1,
			})
			ctx, cancel := context.WithTimeout(context.Background(), tt.timeout)
			defer cancel()
			start := time.Now()
			ids, err := p.PublishBatch(ctx, "acme", events)
			if err == nil {
				t.Fatalf("PublishBatch with partition %d failing = %q, nil", bad, ids)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("error %v does not wrap %v", err, tt.is)
			}
			if tt.not != nil && errors.Is(err, tt.not) {
				t.Errorf("error %v wraps %v", err, tt.not)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("PublishBatch took %v", d)
			}
			if fault.Hits() == 0 {
				t.Fatal("the fault never fired")
			}
			if got := k.ReadAll(t, eventsTopic); len(got) != 0 {
				t.Fatalf("a failed batch left %d of its %d records visible to read_committed readers", len(got), len(events))
			}

			fault.Remove()
			ids, err = p.PublishBatch(context.Background(), "acme", events)
			if err != nil {
				t.Fatalf("PublishBatch after the fault: %v", err)
			}
			got := k.ReadAll(t, eventsTopic)
			if len(got) != len(events) {
				t.Fatalf("read %d records after a good batch, want %d", len(got), len(events))
			}
			for i, r := range got {
				e, err := envelope.Decode(r.Value, 0)
				if err != nil {
					t.Fatal(err)
				}
				if !slices.Contains(ids, e.ID) {
					t.Errorf("record %d is event %s, not of the good batch %q", i, e.ID, ids)
				}
			}
		})
	}
}

// TestPublishSingleRejected: a permanent broker error on the fast path is
// ErrRejected, not a retry-later failure.
func TestPublishSingleRejected(t *testing.T) {
	k, p := start(t)
	k.Server.Cluster().Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: eventsTopic, Err: kerr.TopicAuthorizationFailed, Count: -1})
	_, err := p.Publish(context.Background(), "acme", "agent.created", []byte(created))
	if !errors.Is(err, producer.ErrRejected) || !errors.Is(err, kerr.TopicAuthorizationFailed) || errors.Is(err, producer.ErrOutcomeUnknown) {
		t.Fatalf("Publish = %v; want ErrRejected wrapping TOPIC_AUTHORIZATION_FAILED", err)
	}
}

// TestPublishBatchConcurrent runs more concurrent batches than batch
// clients: every batch must commit, each event exactly once.
func TestPublishBatchConcurrent(t *testing.T) {
	k, p := start(t, producer.WithBatchClients(2))
	t.Cleanup(p.Close)
	const batches, size = 12, 4
	var mu sync.Mutex
	var all []string
	var wg sync.WaitGroup
	for b := range batches {
		wg.Go(func() {
			events := make([]producer.Event, size)
			for i := range events {
				events[i] = producer.Event{Type: "agent.created", Data: []byte(created), Key: fmt.Sprintf("b%d-%d", b, i)}
			}
			ids, err := p.PublishBatch(context.Background(), "acme", events)
			if err != nil {
				t.Errorf("batch %d: %v", b, err)
				return
			}
			mu.Lock()
			all = append(all, ids...)
			mu.Unlock()
		})
	}
	wg.Wait()
	got := k.ReadAll(t, eventsTopic)
	if len(got) != batches*size || len(all) != batches*size {
		t.Fatalf("read %d records, %d ids; want %d", len(got), len(all), batches*size)
	}
	seen := map[string]bool{}
	for _, r := range got {
		e, err := envelope.Decode(r.Value, 0)
		if err != nil {
			t.Fatal(err)
		}
		if seen[e.ID] || !slices.Contains(all, e.ID) {
			t.Fatalf("event %s duplicated or unknown", e.ID)
		}
		seen[e.ID] = true
	}
}
