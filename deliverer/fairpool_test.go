package deliverer

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"
)

// TestFairPool queues acquires behind slots held from the start, then
// frees one slot at a time (the holders', then the granted ones') and
// checks who gets each.
func TestFairPool(t *testing.T) {
	type req struct{ tenant, endpoint string }
	tests := []struct {
		name            string
		capacity, share int
		holders         []string // tenants holding a slot before the waiters come
		waiters         []req    // queued in this order
		wantImmediate   []string // waiters granted on arrival, by tenant/endpoint
		wantOrder       []string // the others, in the order freed slots reach them
	}{
		{
			name: "round-robin among waiting tenants", capacity: 1, share: 1,
			holders: []string{"x"},
			waiters: []req{{"a", "a1"}, {"a", "a2"}, {"a", "a3"}, {"b", "b1"}, {"c", "c1"}},
			// a is under its share when the first slot frees and gets it;
			// then b and c come before a's rest.
			wantOrder: []string{"a/a1", "b/b1", "c/c1", "a/a2", "a/a3"},
		},
		{
			name: "a tenant over its share leaves share slots to others", capacity: 4, share: 1,
			waiters:       []req{{"a", "a1"}, {"a", "a2"}, {"a", "a3"}, {"a", "a4"}, {"b", "b1"}},
			wantImmediate: []string{"a/a1", "a/a2", "a/a3", "b/b1"},
			// One freed slot is kept for a tenant under its share; the
			// second goes to a.
			wantOrder: []string{"a/a4"},
		},
		{
			name: "tenants under their share first", capacity: 3, share: 1,
			holders: []string{"a", "a"},
			waiters: []req{{"a", "a1"}, {"b", "b1"}, {"c", "c1"}},
			// a, over its share, may not take the last slot; b may.
			wantImmediate: []string{"b/b1"},
			// a still holds its share after the first release: c first.
			wantOrder: []string{"c/c1", "a/a1"},
		},
		{
			name: "round-robin among a tenant's endpoints", capacity: 1, share: 1,
			holders:   []string{"x"},
			waiters:   []req{{"a", "e1"}, {"a", "e1"}, {"a", "e1"}, {"a", "e2"}, {"a", "e3"}},
			wantOrder: []string{"a/e1", "a/e2", "a/e3", "a/e1", "a/e1"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			p := newFairPool(tt.capacity, tt.share)
			var held []string // tenants whose slots are to be freed, oldest first
			for _, h := range tt.holders {
				if err := p.acquire(ctx, h, "held"); err != nil {
					t.Fatal(err)
				}
				held = append(held, h)
			}
			granted := make(chan req, len(tt.waiters))
			var immediate []string
			queued := 0
			for _, w := range tt.waiters {
				go func() {
					if err := p.acquire(ctx, w.tenant, w.endpoint); err == nil {
						granted <- w
					}
				}()
				// Wait until it is queued or granted, so the order is the
				// table's.
				for {
					select {
					case g := <-granted:
						immediate = append(immediate, g.tenant+"/"+g.endpoint)
						held = append(held, g.tenant)
					default:
						if p.waiters() == queued+1 {
							queued++
						} else {
							time.Sleep(time.Millisecond)
							continue
						}
					}
					break
				}
			}
			if !slices.Equal(immediate, tt.wantImmediate) {
				t.Fatalf("granted on arrival %v, want %v", immediate, tt.wantImmediate)
			}
			var order []string
			for len(order) < len(tt.wantOrder) {
				if len(held) == 0 {
					t.Fatalf("nothing left to free; got %v so far, want %v", order, tt.wantOrder)
				}
				before := p.waiters()
				p.release(held[0])
				held = held[1:]
				// Grants happen inside release; their goroutines report
				// them right after.
				for range before - p.waiters() {
					select {
					case g := <-granted:
						order = append(order, g.tenant+"/"+g.endpoint)
						held = append(held, g.tenant)
					case <-ctx.Done():
						t.Fatalf("granted waiter never returned; got %v, want %v", order, tt.wantOrder)
					}
				}
			}
			if !slices.Equal(order, tt.wantOrder) {
				t.Fatalf("grants %v, want %v", order, tt.wantOrder)
			}
		})
	}
}

// TestFairPoolCancel: a waiter whose context ends holds no slot and does
// not keep others from one.
func TestFairPoolCancel(t *testing.T) {
	p := newFairPool(1, 1)
	ctx := context.Background()
	if err := p.acquire(ctx, "a", "e"); err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if err := p.acquire(cctx, "b", "e"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("acquire with an ending context: %v", err)
	}
	if n := p.waiters(); n != 0 {
		t.Fatalf("%d waiters after the cancelled one left", n)
	}
	p.release("a")
	tctx, cancel2 := context.WithTimeout(ctx, 10*time.Second)
	defer cancel2()
	if err := p.acquire(tctx, "c", "e"); err != nil {
		t.Fatalf("acquire after release: %v", err)
	}
}
