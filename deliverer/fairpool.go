package deliverer

import (
	"context"
	"slices"
	"sync"
)

// fairPool shares the process's request slots among tenants, so that one
// tenant's slow endpoints never take every slot from the others.
//
// A tenant holds up to share slots; it takes more only while share slots
// stay free after, so a tenant arriving finds slots without waiting
// for a hung request to time out. Freed slots go round-robin to the
// tenants waiting for one (those under their share first), and inside a
// tenant round-robin to its endpoints.
type fairPool struct {
	share int

	mu      sync.Mutex
	free    int
	held    map[string]int // tenant → slots
	waiting map[string]*tenantWaiters
	turn    []string // tenants with waiters, next first
}

type tenantWaiters struct {
	byEndpoint map[string][]*slotWaiter
	turn       []string // endpoints with waiters, next first
}

type slotWaiter struct {
	granted chan struct{}
	done    bool // granted, under fairPool.mu
}

// newFairPool returns a pool of capacity slots; share (at least 1) is what
// one tenant may hold while others could need slots.
func newFairPool(capacity, share int) *fairPool {
	return &fairPool{share: max(1, share), free: capacity, held: map[string]int{}, waiting: map[string]*tenantWaiters{}}
}

// acquire waits for a slot for one request of tenant's endpoint. It
// returns ctx's error, holding no slot, if ctx ends first.
func (p *fairPool) acquire(ctx context.Context, tenant, endpoint string) error {
	w := &slotWaiter{granted: make(chan struct{})}
	p.mu.Lock()
	tw := p.waiting[tenant]
	if tw == nil {
		tw = &tenantWaiters{byEndpoint: map[string][]*slotWaiter{}}
		p.waiting[tenant] = tw
		p.turn = append(p.turn, tenant)
	}
	if len(tw.byEndpoint[endpoint]) == 0 {
		tw.turn = append(tw.turn, endpoint)
	}
	tw.byEndpoint[endpoint] = append(tw.byEndpoint[endpoint], w)
	p.dispatch()
	p.mu.Unlock()

	select {
	case <-w.granted:
		return nil
	case <-ctx.Done():
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if w.done {
		p.releaseLocked(tenant)
		return ctx.Err()
	}
	p.remove(tenant, endpoint, w)
	return ctx.Err()
}

// release returns a slot acquire gave tenant.
func (p *fairPool) release(tenant string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.releaseLocked(tenant)
}

func (p *fairPool) releaseLocked(tenant string) {
	p.free++
	if p.held[tenant]--; p.held[tenant] <= 0 {
		delete(p.held, tenant)
	}
	p.dispatch()
}

// dispatch hands free slots to waiters, in turn.
func (p *fairPool) dispatch() {
	for p.free > 0 && len(p.turn) > 0 {
		i := slices.IndexFunc(p.turn, func(t string) bool { return p.held[t] < p.share })
		if i < 0 {
			if p.free <= p.share {
				return // kept for tenants that come under their share
			}
			i = 0
		}
		p.grantNext(p.turn[i], i)
	}
}

// grantNext gives a slot to the next waiter of tenant (at index i of
// turn) and moves tenant, and its endpoint, to the back of their turns.
func (p *fairPool) grantNext(tenant string, i int) {
	tw := p.waiting[tenant]
	ep := tw.turn[0]
	ws := tw.byEndpoint[ep]
	w := ws[0]
	tw.turn = tw.turn[1:]
	if len(ws) == 1 {
		delete(tw.byEndpoint, ep)
	} else {
		tw.byEndpoint[ep] = ws[1:]
		tw.turn = append(tw.turn, ep)
	}
	p.turn = slices.Delete(p.turn, i, i+1)
	if len(tw.turn) > 0 {
		p.turn = append(p.turn, tenant)
	} else {
		delete(p.waiting, tenant)
	}
	p.free--
	p.held[tenant]++
	w.done = true
	close(w.granted)
}

// remove drops a waiter that gave up.
func (p *fairPool) remove(tenant, endpoint string, w *slotWaiter) {
	tw := p.waiting[tenant]
	ws := slices.DeleteFunc(tw.byEndpoint[endpoint], func(x *slotWaiter) bool { return x == w })
	if len(ws) > 0 {
		tw.byEndpoint[endpoint] = ws
		return
	}
	delete(tw.byEndpoint, endpoint)
	tw.turn = slices.DeleteFunc(tw.turn, func(e string) bool { return e == endpoint })
	if len(tw.turn) == 0 {
		delete(p.waiting, tenant)
		p.turn = slices.DeleteFunc(p.turn, func(t string) bool { return t == tenant })
	}
	// A waiter that was not allowed a free slot may have been what kept
	// another from it; nothing changes for the others, so no dispatch.
}

// waiters counts waiting acquires, for tests.
func (p *fairPool) waiters() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, tw := range p.waiting {
		for _, ws := range tw.byEndpoint {
			n += len(ws)
		}
	}
	return n
}
