package deliverylog_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/segmentio/encoding/json"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hookstream/hookstream/deliverer"
	"github.com/hookstream/hookstream/internal/deliverylog"
	"github.com/hookstream/hookstream/internal/testenv"
	"github.com/hookstream/hookstream/topic"
)

// BenchmarkIndexLag reports how long an attempt takes from being written
// to the attempts topic to being queryable, p50 and p99, while attempts
// stream in at about 2,000 a second (batches of 20 every 10 ms) across 50
// endpoints. b.N is the number of batches.
func BenchmarkIndexLag(b *testing.B) {
	k := testenv.StartKafka(b)
	e := &env{kafka: k, redis: testenv.StartRedis(b)}
	e.topics = k.CreateTopics(b, "lag.", topic.Partitions{Events: 3, Deliveries: 3, Other: 3})
	e.prod = k.Client(b, kgo.DefaultProduceTopic(e.topics.Attempts))
	x := deliverylog.NewIndexer(deliverylog.IndexerConfig{Seeds: []string{k.Addr}, Topic: e.topics.Attempts, CheckEvery: 100 * time.Millisecond}, e.redis.Client)
	testenv.Run(b, x)
	ix := x.Index()
	ctx := context.Background()
	type sent struct {
		ep string
		at time.Time
	}
	batches := make(chan sent, b.N)
	b.ResetTimer()
	go func() {
		defer close(batches)
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for i := range b.N {
			<-tick.C
			ep := fmt.Sprintf("ep_%024x", i%50)
			var rs []*kgo.Record
			at := time.Now().UTC()
			for j := range 20 {
				v, _ := json.Marshal(deliverer.Attempt{Tenant: "acme", EndpointID: ep, EventID: fmt.Sprintf("evt_%012x%012x", i, j),
					EventType: "agent.created", Attempt: 1, Status: 200, Outcome: "delivered", Trigger: "scheduled", At: at})
				rs = append(rs, &kgo.Record{Key: []byte(ep), Value: v})
			}
			// Not waiting for the acks: the lag counts from the attempt's
			// time, as the deliverer stamps it.
			for _, r := range rs {
				e.prod.Produce(ctx, r, nil)
			}
			batches <- sent{ep: ep, at: at}
		}
	}()
	var lags []time.Duration
	for s := range batches {
		// The batch's last attempt is the endpoint's newest: the batch is
		// queryable when the endpoint's first page holds 20 attempts at
		// its time.
		for {
			pg, err := ix.EndpointAttempts(ctx, "acme", s.ep, deliverylog.Query{Limit: 20, Filter: deliverylog.Filter{Since: s.at}})
			if err != nil {
				b.Fatal(err)
			}
			if len(pg.Data) == 20 {
				break
			}
			time.Sleep(time.Millisecond)
		}
		lags = append(lags, time.Since(s.at))
	}
	b.StopTimer()
	slices.Sort(lags)
	b.ReportMetric(float64(lags[len(lags)/2].Microseconds())/1000, "lag-p50-ms")
	b.ReportMetric(float64(lags[len(lags)*99/100].Microseconds())/1000, "lag-p99-ms")
}
