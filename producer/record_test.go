package producer

import (
	"context"
	"testing"

	"github.com/hookstream/hookstream/schemas"
)

// BenchmarkRecord measures the per-event work Publish does before Kafka:
// schema validation, envelope encoding and record building. The Publish
// benchmarks include the in-process broker's allocations; this one does not.
func BenchmarkRecord(b *testing.B) {
	cat, err := schemas.Load()
	if err != nil {
		b.Fatal(err)
	}
	p := New(nil, cat)
	ctx := context.Background()
	ev := Event{Type: "agent.created", Data: []byte(`{"agent_id":"agt_abc123","name":"Customer Support Bot","model":"gpt-4o","created_by":42}`)}
	b.Run("validate+encode", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, _, err := p.build(ctx, "acme", &ev); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("schema validation alone", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := cat.Validate(ev.Type, ev.Data); err != nil {
				b.Fatal(err)
			}
		}
	})
}
