package subscription

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/segmentio/encoding/json"
)

// BenchmarkMatch measures one Match in a tenant of 100 and of 100,000
// endpoints, 10 of which match: warm (answered by the in-process cache) and
// cold (cache dropped before each call, so the Redis SUNION path). The
// endpoints are written with the store's apply function in pipelined
// batches (synthetic offsets), not through 100,000 Kafka produces; that is
// exactly what a rebuild from the topic writes.
func BenchmarkMatch(b *testing.B) {
	e := newEnv(b)
	s := e.store(b, false)
	ctx := context.Background()
	if err := s.rdb.Set(ctx, s.keys.generation, "bench", 0).Err(); err != nil {
		b.Fatal(err)
	}
	// Both tenants live in Redis for both measurements, so only the
	// tenant's size differs between them.
	sizes := []int{100, 100_000}
	offset := int64(0)
	for _, n := range sizes {
		loadEndpoints(b, s, fmt.Sprintf("bench-%d", n), n, &offset)
	}
	for _, n := range sizes {
		tenant := fmt.Sprintf("bench-%d", n)
		b.Run(fmt.Sprintf("endpoints=%d", n), func(b *testing.B) {
			if got := match(b, s, tenant, "agent.created"); len(got) != 10 {
				b.Fatalf("Match returned %d ids, want 10", len(got))
			}
			b.Run("warm", func(b *testing.B) {
				for b.Loop() {
					if _, err := s.Match(ctx, tenant, "agent.created"); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run("cold", func(b *testing.B) {
				for b.Loop() {
					s.invalidate()
					if _, err := s.Match(ctx, tenant, "agent.created"); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}

// loadEndpoints writes n endpoints of tenant: 10 that select agent.created
// (exact, prefix and "*"), the rest spread over filters that do not.
func loadEndpoints(b *testing.B, s *Store, tenant string, n int, offset *int64) {
	b.Helper()
	matching := [][]string{{"agent.created"}, {"agent.*"}, {"*"}}
	other := [][]string{{"call.started"}, {"call.*"}, {"fleet.*"}, {"billing.payment_failed", "agent.deployed"}}
	now := time.Now().UTC()
	batch := make([]change, 0, applyChunk)
	flush := func() {
		if _, err := s.apply(context.Background(), batch); err != nil {
			b.Fatal(err)
		}
		batch = batch[:0]
	}
	for i := range n {
		events := other[i%len(other)]
		if i < 10 {
			events = matching[i%len(matching)]
		}
		e := &Endpoint{
			ID: newID(now), Tenant: tenant, URL: "https://93.184.215.14/hook", Events: events,
			Secrets:   []Secret{{Value: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}},
			Signature: SchemeStandard, Ordering: OrderingStrict, Version: 1, CreatedAt: now, UpdatedAt: now,
		}
		v, err := json.Marshal(e)
		if err != nil {
			b.Fatal(err)
		}
		*offset++
		batch = append(batch, change{id: e.ID, offset: *offset, value: v, ep: e})
		if len(batch) == applyChunk {
			flush()
		}
	}
	if len(batch) > 0 {
		flush()
	}
}
