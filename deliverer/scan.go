package deliverer

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// errExpired is returned by read when the offset asked for is below the
// partition's log start: retention deleted records no lane had delivered.
var errExpired = errors.New("deliverer: retries records expired before delivery")

// scanBytes bounds one read: a reading lane holds at most this much of
// other lanes' records at once.
const scanBytes = 1 << 20

// reader reads a retries partition from any offset, apart from the group
// consumer, which stays at the end of the topic: a reading lane reads its
// parked records back through it.
type reader struct {
	cl    *kgo.Client
	adm   *kadm.Client
	topic string
	// sem bounds the reads in flight across the process, so read-backs cost
	// bounded memory however many lanes read back at once.
	sem chan struct{}

	mu      sync.Mutex
	id      kadm.TopicID
	leaders map[int32]int32 // nil: unknown
}

func newReader(cl *kgo.Client, topic string) *reader {
	return &reader{cl: cl, adm: kadm.NewClient(cl), topic: topic, sem: make(chan struct{}, 4)}
}

// read returns the records of partition p from offset on (at most about
// scanBytes), the offset to read next, and the partition's end (its last
// stable offset) as the broker saw it.
func (r *reader) read(ctx context.Context, p int32, offset int64) (recs []*kgo.Record, next, end int64, err error) {
	select {
	case r.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, 0, 0, ctx.Err()
	}
	defer func() { <-r.sem }()
	for try := 0; ; try++ {
		recs, next, end, err = r.readOnce(ctx, p, offset)
		var ke *kerr.Error
		if try < 2 && errors.As(err, &ke) && ke.Retriable {
			r.forget() // a moved leader or a recreated topic: look again
			continue
		}
		return recs, next, end, err
	}
}

func (r *reader) readOnce(ctx context.Context, p int32, offset int64) ([]*kgo.Record, int64, int64, error) {
	leader, id, err := r.leader(ctx, p)
	if err != nil {
		return nil, 0, 0, err
	}
	req := kmsg.NewPtrFetchRequest()
	req.MaxBytes = scanBytes
	req.MinBytes = 1
	req.IsolationLevel = 1 // read_committed, like the group consumer
	rt := kmsg.NewFetchRequestTopic()
	rt.Topic, rt.TopicID = r.topic, id
	rp := kmsg.NewFetchRequestTopicPartition()
	rp.Partition, rp.FetchOffset, rp.PartitionMaxBytes = p, offset, scanBytes
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	kresp, err := r.cl.Broker(int(leader)).Request(ctx, req)
	if err != nil {
		return nil, 0, 0, fmt.Errorf("fetch %s/%d@%d: %w", r.topic, p, offset, err)
	}
	resp := kresp.(*kmsg.FetchResponse)
	if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
		return nil, 0, 0, fmt.Errorf("fetch %s/%d@%d: %w", r.topic, p, offset, err)
	}
	if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
		return nil, 0, 0, fmt.Errorf("fetch %s/%d@%d: answer for other partitions", r.topic, p, offset)
	}
	part := &resp.Topics[0].Partitions[0]
	switch err := kerr.ErrorForCode(part.ErrorCode); {
	case errors.Is(err, kerr.OffsetOutOfRange) && part.LogStartOffset > offset:
		return nil, part.LogStartOffset, part.HighWatermark, fmt.Errorf("%w: %s/%d from %d to %d", errExpired, r.topic, p, offset, part.LogStartOffset)
	case err != nil:
		return nil, 0, 0, fmt.Errorf("fetch %s/%d@%d: %w", r.topic, p, offset, err)
	}
	fp, next := kgo.ProcessFetchPartition(kgo.ProcessFetchPartitionOpts{
		Offset:         offset,
		IsolationLevel: kgo.ReadCommitted(),
		Topic:          r.topic,
		Partition:      p,
	}, part, kgo.DefaultDecompressor(), nil)
	if fp.Err != nil {
		return nil, 0, 0, fmt.Errorf("fetch %s/%d@%d: %w", r.topic, p, offset, fp.Err)
	}
	end := fp.LastStableOffset
	if end < 0 {
		end = fp.HighWatermark
	}
	return fp.Records, max(next, offset), end, nil
}

// leader returns partition p's leader and the topic id, from metadata
// cached until a read fails.
func (r *reader) leader(ctx context.Context, p int32) (int32, kadm.TopicID, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.leaders == nil {
		ts, err := r.adm.ListTopics(ctx, r.topic)
		if err == nil {
			err = ts.Error()
		}
		if err != nil {
			return 0, kadm.TopicID{}, fmt.Errorf("metadata of %s: %w", r.topic, err)
		}
		d := ts[r.topic]
		r.id, r.leaders = d.ID, map[int32]int32{}
		for _, pd := range d.Partitions {
			r.leaders[pd.Partition] = pd.Leader
		}
	}
	l, ok := r.leaders[p]
	if !ok || l < 0 {
		r.leaders = nil
		return 0, kadm.TopicID{}, fmt.Errorf("metadata of %s: no leader for partition %d", r.topic, p)
	}
	return l, r.id, nil
}

func (r *reader) forget() {
	r.mu.Lock()
	r.leaders = nil
	r.mu.Unlock()
}
