package recovery

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hookstream/hookstream/internal/testenv"
	"github.com/hookstream/hookstream/topic"
)

// TestMergeBounded: a replay merges partitions by time while holding at
// most merger.max records of each. Here partition 0's events lie 300 ms
// apart and partition 1's 1 ms apart, so nearly all of 1 comes before the
// second event of 0, and 0 used to be held whole while 1 drained. Every
// record still comes out once, in time order, offsets in order.
func TestMergeBounded(t *testing.T) {
	k := testenv.StartKafka(t)
	names := k.CreateTopics(t, "merge.", topic.Partitions{Events: 2, Deliveries: 1, Other: 1})
	cl := k.Client(t, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	const n = 600
	t0 := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
	var recs []*kgo.Record
	for i := range n {
		recs = append(recs,
			&kgo.Record{Topic: names.Events, Partition: 0, Value: []byte("a"), Timestamp: t0.Add(time.Duration(i) * 300 * time.Millisecond)},
			&kgo.Record{Topic: names.Events, Partition: 1, Value: []byte("b"), Timestamp: t0.Add(time.Duration(i) * time.Millisecond)})
	}
	ctx := context.Background()
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	m, err := newMerger(k.Client(t).Opts(), names.Events, map[int32]int64{0: 0, 1: 0}, map[int32]int64{0: n, 1: n})
	if err != nil {
		t.Fatal(err)
	}
	defer m.close()
	m.max = 50
	var prev time.Time
	next := map[int32]int64{}
	held := 0
	for got := 0; ; got++ {
		r, err := m.next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if r == nil {
			if got != 2*n {
				t.Fatalf("%d records merged, want %d", got, 2*n)
			}
			break
		}
		if r.Timestamp.Before(prev) {
			t.Fatalf("record %d/%d at %s after one at %s", r.Partition, r.Offset, r.Timestamp, prev)
		}
		if r.Offset != next[r.Partition] {
			t.Fatalf("partition %d: offset %d, want %d", r.Partition, r.Offset, next[r.Partition])
		}
		prev, next[r.Partition] = r.Timestamp, r.Offset+1
		for _, b := range m.buf {
			held = max(held, len(b))
		}
	}
	if held > m.max {
		t.Errorf("held %d records of one partition, bound %d", held, m.max)
	}
}
