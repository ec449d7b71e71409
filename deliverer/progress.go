package deliverer

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.opentelemetry.io/otel/metric"
)

// ErrUnassigned is the readiness error of a deliverer that has held no
// partition for longer than its bound: its group is stuck in a rebalance,
// or the group has more members than partitions.
var ErrUnassigned = errors.New("deliverer: no partitions assigned")

// progress records when the deliverer last held partitions and last
// committed: a group stuck rebalancing leaves every member without
// partitions while its process still looks healthy.
type progress struct {
	now func() time.Time

	mu          sync.Mutex
	held        bool
	heldAt      time.Time // when it last held partitions, or started
	committedAt time.Time // the last commit, or the start
}

func newProgress(now func() time.Time) *progress {
	t := now()
	return &progress{now: now, heldAt: t, committedAt: t}
}

// setHeld records whether the deliverer holds partitions now.
func (p *progress) setHeld(held bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.held && !held {
		p.heldAt = p.now()
	}
	p.held = held
}

func (p *progress) committed() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.committedAt = p.now()
}

// sinceAssignment is how long the deliverer has held no partitions: 0
// while it holds some.
func (p *progress) sinceAssignment() time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.held {
		return 0
	}
	return p.now().Sub(p.heldAt)
}

func (p *progress) sinceCommit() time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.now().Sub(p.committedAt)
}

// check fails once the deliverer has held no partitions for longer than
// bound.
func (p *progress) check(bound time.Duration) error {
	if d := p.sinceAssignment(); d > bound {
		return fmt.Errorf("%w for %v (bound %v)", ErrUnassigned, d.Round(time.Second), bound)
	}
	return nil
}

// AssignmentCheck is a readiness check: it fails once the deliverer has
// held no partitions for longer than bound (set it above the session plus
// rebalance timeouts, so that an ordinary rebalance passes).
func (d *Deliverer) AssignmentCheck(bound time.Duration) func(context.Context) error {
	return func(context.Context) error { return d.prog.check(bound) }
}

func registerProgress(mp metric.MeterProvider, p *progress) error {
	m := mp.Meter("hookstream/deliverer")
	_, err := m.Float64ObservableGauge("hookstream.deliverer.unassigned.duration", metric.WithUnit("s"),
		metric.WithDescription("Time this deliverer has held no partitions; 0 while it holds some."),
		metric.WithFloat64Callback(func(_ context.Context, o metric.Float64Observer) error {
			o.Observe(p.sinceAssignment().Seconds())
			return nil
		}))
	if err != nil {
		return fmt.Errorf("deliverer metrics: %w", err)
	}
	_, err = m.Float64ObservableGauge("hookstream.deliverer.commit.age", metric.WithUnit("s"),
		metric.WithDescription("Time since this deliverer last committed offsets (or started)."),
		metric.WithFloat64Callback(func(_ context.Context, o metric.Float64Observer) error {
			o.Observe(p.sinceCommit().Seconds())
			return nil
		}))
	if err != nil {
		return fmt.Errorf("deliverer metrics: %w", err)
	}
	return nil
}
