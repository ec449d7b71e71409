package producer_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/hookstream/hookstream/producer"
)

// BenchmarkPublish publishes one event per call against the embedded broker
// over TCP: serial measures a caller waiting for each acknowledgement,
// parallel many concurrent callers (an API server under load).
func BenchmarkPublish(b *testing.B) {
	_, p := start(b)
	ctx := context.Background()
	data := []byte(created)
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := p.Publish(ctx, "acme", "agent.created", data); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.SetParallelism(16)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := p.Publish(ctx, "acme", "agent.created", data); err != nil {
					b.Error(err)
					return
				}
			}
		})
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	})
}

// BenchmarkPublishBatch publishes batches; one op is one batch.
func BenchmarkPublishBatch(b *testing.B) {
	_, p := start(b)
	ctx := context.Background()
	for _, n := range []int{10, 100, 500} {
		events := make([]producer.Event, n)
		for i := range events {
			events[i] = producer.Event{Type: "agent.created", Data: []byte(created)}
		}
		b.Run(fmt.Sprintf("batch=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := p.PublishBatch(ctx, "acme", events); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "events/s")
		})
	}
}
