package fanout_test

import (
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/hookstream/hookstream/internal/topic"
	"github.com/hookstream/hookstream/producer"
)

// BenchmarkFanout measures one fanout process (transactions, dedupe in
// Redis, matching through the real store) draining b.N pre-published
// events into 1, 10 or 100 deliveries each. The time includes the group
// join (about 30 ms on kfake).
func BenchmarkFanout(b *testing.B) {
	r := newRig(b, 6)
	matcher := r.store(b)
	round := 0
	for _, k := range []int{1, 10, 100} {
		tenant := "t" + strconv.Itoa(k)
		for range k {
			r.endpoint(b, tenant, "*")
		}
		b.Run(fmt.Sprintf("fanout=%d", k), func(b *testing.B) {
			round++
			ctx := ctxFor(b, 10*time.Minute)
			names := topic.New(fmt.Sprintf("b%d.", round))
			if err := topic.Ensure(ctx, kadm.NewClient(r.raw), names, topic.Partitions{Events: 6, Deliveries: 6, Other: 1}); err != nil {
				b.Fatal(err)
			}
			group := "bench-" + strconv.Itoa(round)
			pub := producer.New(r.raw, r.cat, producer.WithTopicPrefix(fmt.Sprintf("b%d.", round)))
			data := r.example(b, "agent.created")
			batch := make([]producer.Event, 0, 1000)
			for i := 0; i < b.N; {
				batch = batch[:0]
				for ; i < b.N && len(batch) < cap(batch); i++ {
					batch = append(batch, producer.Event{Type: "agent.created", Data: data, Key: "k" + strconv.Itoa(i%64)})
				}
				if _, err := pub.PublishBatch(ctx, tenant, batch); err != nil {
					b.Fatal(err)
				}
			}

			b.ResetTimer()
			start := time.Now()
			f := r.startOn(b, names, group, matcher, nil)
			for {
				done, _ := groupProgress(b, r.raw, names.Events, group)
				if done == int64(b.N) {
					break
				}
				time.Sleep(time.Millisecond)
			}
			elapsed := time.Since(start)
			b.StopTimer()
			if err := f.stop(); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
			b.ReportMetric(float64(b.N*k)/elapsed.Seconds(), "deliveries/s")
		})
	}
}
