package deliverylog

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/segmentio/encoding/json"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hookstream/hookstream/deliverer"
	"github.com/hookstream/hookstream/internal/record"
)

// BenchmarkQueue measures the indexer's own work per delivery in bench
// (a)'s shape (1,000 endpoints, ten per event; a match record per event
// and an attempt record per delivery), a poll at a time,
// without Redis: what the indexer spends before its pipeline goes out.
func BenchmarkQueue(b *testing.B) {
	const events, fanout, endpoints = 200, 10, 1000
	x := NewIndexer(IndexerConfig{Topic: "a", Matches: "m", Dead: "x", Retries: "r"}, nil)
	now := time.Now()
	var recs []*kgo.Record
	for e := range events {
		m := record.Match{Tenant: "acme", EventID: fmt.Sprintf("evt_%024x", e), EventType: "agent.created",
			Topic: "events", Partition: int32(e % 12), Offset: int64(e), At: now}
		for i := range fanout {
			m.Endpoints = append(m.Endpoints, fmt.Sprintf("ep_%024x", (e*fanout+i)%endpoints))
		}
		r, err := m.Record("m")
		if err != nil {
			b.Fatal(err)
		}
		recs = append(recs, r)
		for i, ep := range m.Endpoints {
			a := deliverer.Attempt{Tenant: "acme", EndpointID: ep, EventID: m.EventID, EventType: m.EventType, Attempt: 1,
				Status: 200, LatencyMS: 3, Outcome: "delivered", Trigger: "scheduled", At: now,
				RequestHeaders: map[string]string{"Content-Type": "application/json", "Webhook-Id": m.EventID, "Webhook-Signature": "[redacted]"}}
			v, err := json.Marshal(a)
			if err != nil {
				b.Fatal(err)
			}
			recs = append(recs, &kgo.Record{Topic: "a", Partition: int32(i % 12), Offset: int64(e), Key: []byte(ep), Value: v, Timestamp: now})
		}
	}
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"}) // never dialled: the pipeline is discarded
	defer rdb.Close()
	ctx := context.Background()
	done := newHousekeeping()
	// Every endpoint's state known, as after the run's first polls: the
	// flush then reads nothing from Redis.
	for e := range endpoints {
		done.states[stateKey("acme", fmt.Sprintf("ep_%024x", e))] = &epState{}
	}
	b.ReportAllocs()
	b.ResetTimer()
	pl := x.ix.newPoll(done)
	for range b.N {
		p := rdb.Pipeline()
		pl.reset(done)
		for _, r := range recs {
			x.queue(ctx, p, pl, r)
		}
		if err := pl.flush(ctx, p); err != nil {
			b.Fatal(err)
		}
		p.Discard()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(events*fanout)/1000, "µs/delivery")
}
