// Package groupwatch follows one consumer group member's assignment and
// commits, so that its readiness and metrics show what its process cannot
// see otherwise: a group stuck rebalancing (every member without
// partitions while each process looks healthy), or a member that holds
// partitions and stops committing while their lag grows.
//
// Stuck groups are reported, not repaired: on the embedded broker (kfake)
// a group of dynamic members killed and restarted faster than they time
// out never finishes its join phase, because kfake restarts the phase's
// deadline at every join and drops members waiting in JoinGroup whose
// session runs out without answering them (the client waits out its
// request timeout, then rejoins and restarts the phase); see
// internal/kafkaserver/groups_test.go. Leaving and rejoining would only
// add joins. What avoids it is static membership (--instance-id): a
// restarted member replaces its old self instead of joining beside a dead
// one, so no member waits for one that will not rejoin.
package groupwatch

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/metric"
)

// ErrUnassigned is the readiness error of a member that has held no
// partition for longer than its bound: its group is stuck in a rebalance,
// or the group has more members than partitions.
var ErrUnassigned = errors.New("no partitions assigned")

// ErrStalled is the readiness error of a member that holds partitions and
// has not committed for longer than its bound while their lag grew.
var ErrStalled = errors.New("no commit while lag grows")

// ErrRebalancing is the readiness error of a member whose group has been
// rebalancing for longer than its bound: stuck, so that the partitions of
// a member that left or crashed may have no consumer while the members
// left keep their own.
var ErrRebalancing = errors.New("group rebalancing")

// Probe reads what the member cannot see from its own client.
type Probe interface {
	// Lag returns the records of the partitions held (topic =>
	// partitions) that the group has not committed.
	Lag(ctx context.Context, held map[string][]int32) (int64, error)
	// State returns the group's state as Kafka names it ("Stable",
	// "PreparingRebalance", "CompletingRebalance", "Empty", "Dead").
	State(ctx context.Context) (string, error)
}

// Watch is one member's assignment and commit history. Its methods are
// safe for concurrent use.
type Watch struct {
	now func() time.Time

	mu          sync.Mutex
	held        map[string]map[int32]bool
	heldAt      time.Time // when it last held partitions, or started
	committedAt time.Time // the last commit, or the start
	// The lag seen by the first check after the last commit (or since
	// the member holds partitions), and when a later check first saw it
	// higher: a stall is counted from then, so an idle member (its lag
	// steady, perhaps at a transaction marker) is not stalled, nor a busy
	// one between two commits.
	base    int64
	baseSet bool
	grewAt  time.Time
	// gen counts assignment changes and commits: a lag read across one
	// compares different things.
	gen int
	// When a check first saw the group rebalancing, since it last saw it
	// settled.
	rebalancingAt time.Time
}

// New returns a Watch whose clock is now (time.Now in production).
func New(now func() time.Time) *Watch {
	t := now()
	return &Watch{now: now, held: map[string]map[int32]bool{}, heldAt: t, committedAt: t}
}

// Assigned records partitions the member was given.
func (w *Watch) Assigned(m map[string][]int32) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.changed()
	for t, ps := range m {
		if w.held[t] == nil {
			w.held[t] = map[int32]bool{}
		}
		for _, p := range ps {
			w.held[t][p] = true
		}
	}
}

// Released records partitions the member gave back or lost.
func (w *Watch) Released(m map[string][]int32) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.changed()
	had := w.holding()
	for t, ps := range m {
		for _, p := range ps {
			delete(w.held[t], p)
		}
	}
	if had && !w.holding() {
		w.heldAt = w.now()
	}
}

// Committed records a successful offset commit.
func (w *Watch) Committed() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.committedAt = w.now()
	w.changed()
}

// changed starts the lag comparison afresh.
func (w *Watch) changed() {
	w.gen++
	w.baseSet, w.grewAt = false, time.Time{}
}

// ClientOpts are the kgo callbacks that keep w up to date, for a client
// that sets no callbacks of its own (a GroupTransactSession wraps them).
func (w *Watch) ClientOpts() []kgo.Opt {
	return []kgo.Opt{
		kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, m map[string][]int32) { w.Assigned(m) }),
		kgo.OnPartitionsRevoked(func(_ context.Context, _ *kgo.Client, m map[string][]int32) { w.Released(m) }),
		kgo.OnPartitionsLost(func(_ context.Context, _ *kgo.Client, m map[string][]int32) { w.Released(m) }),
	}
}

func (w *Watch) holding() bool {
	for _, ps := range w.held {
		if len(ps) > 0 {
			return true
		}
	}
	return false
}

// SinceAssignment is how long the member has held no partitions: 0 while
// it holds some.
func (w *Watch) SinceAssignment() time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.holding() {
		return 0
	}
	return w.now().Sub(w.heldAt)
}

// SinceCommit is how long ago the member last committed (or started).
func (w *Watch) SinceCommit() time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.now().Sub(w.committedAt)
}

// Check is a readiness check. It fails with ErrUnassigned once the member
// has held no partitions for longer than bound; with ErrRebalancing once
// every check for longer than bound saw its group rebalancing; and with
// ErrStalled once it has held partitions without committing for longer
// than bound after their lag first grew. What probe (nil: none) cannot read
// passes: Kafka's own readiness check reports an unreachable Kafka. Set
// bound above the session plus rebalance timeouts, so an ordinary
// rebalance passes, and above the longest a record may hold a commit back.
func (w *Watch) Check(bound time.Duration, probe Probe) func(context.Context) error {
	return func(ctx context.Context) error {
		w.mu.Lock()
		if !w.holding() {
			d := w.now().Sub(w.heldAt)
			w.mu.Unlock()
			if d > bound {
				return fmt.Errorf("%w for %v (bound %v)", ErrUnassigned, d.Round(time.Second), bound)
			}
		} else {
			w.mu.Unlock()
		}
		if probe == nil {
			return nil
		}
		if err := w.checkState(ctx, bound, probe); err != nil {
			return err
		}
		return w.checkLag(ctx, bound, probe)
	}
}

func (w *Watch) checkState(ctx context.Context, bound time.Duration, probe Probe) error {
	state, err := probe.State(ctx)
	if err != nil {
		return nil
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	now := w.now()
	switch {
	case state != "PreparingRebalance" && state != "CompletingRebalance":
		w.rebalancingAt = time.Time{}
	case w.rebalancingAt.IsZero():
		w.rebalancingAt = now
	case now.Sub(w.rebalancingAt) > bound:
		return fmt.Errorf("%w (%s) for %v (bound %v)", ErrRebalancing, state, now.Sub(w.rebalancingAt).Round(time.Second), bound)
	}
	return nil
}

func (w *Watch) checkLag(ctx context.Context, bound time.Duration, probe Probe) error {
	w.mu.Lock()
	if !w.holding() {
		w.mu.Unlock()
		return nil
	}
	held := map[string][]int32{}
	for t, ps := range w.held {
		for p := range ps {
			held[t] = append(held[t], p)
		}
	}
	gen := w.gen
	w.mu.Unlock()

	n, err := probe.Lag(ctx, held)
	if err != nil {
		return nil
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.gen != gen {
		return nil // committed or reassigned meanwhile: n is stale
	}
	now := w.now()
	switch {
	case !w.baseSet:
		w.base, w.baseSet = n, true
	case n > w.base && w.grewAt.IsZero():
		w.grewAt = now
	}
	if !w.grewAt.IsZero() && now.Sub(w.grewAt) > bound {
		return fmt.Errorf("%w: none for %v, lag up from %d to %d (bound %v)",
			ErrStalled, now.Sub(w.committedAt).Round(time.Second), w.base, n, bound)
	}
	return nil
}

// Kafka is the Probe of group through adm.
type Kafka struct {
	adm   *kadm.Client
	group string
}

// NewKafka returns the Probe of group through adm.
func NewKafka(adm *kadm.Client, group string) *Kafka { return &Kafka{adm: adm, group: group} }

// State describes the group.
func (k *Kafka) State(ctx context.Context) (string, error) {
	gs, err := k.adm.DescribeGroups(ctx, k.group)
	if err != nil {
		return "", fmt.Errorf("describe %s: %w", k.group, err)
	}
	g, ok := gs[k.group]
	if !ok || g.Err != nil {
		return "", fmt.Errorf("describe %s: %w", k.group, orNotDescribed(g.Err))
	}
	return g.State, nil
}

func orNotDescribed(err error) error {
	if err == nil {
		return errors.New("not described")
	}
	return err
}

// Lag is the group's committed offsets of held against the end offsets.
func (k *Kafka) Lag(ctx context.Context, held map[string][]int32) (int64, error) {
	var topics []string
	for t := range held {
		topics = append(topics, t)
	}
	ends, err := k.adm.ListEndOffsets(ctx, topics...)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return 0, fmt.Errorf("end offsets: %w", err)
	}
	committed, err := k.adm.FetchOffsetsForTopics(ctx, k.group, topics...)
	if err == nil {
		err = committed.Error()
	}
	if err != nil {
		return 0, fmt.Errorf("committed offsets of %s: %w", k.group, err)
	}
	var sum int64
	for t, ps := range held {
		for _, p := range ps {
			end, ok := ends.Lookup(t, p)
			if !ok || end.Err != nil {
				continue
			}
			at := int64(0)
			if o, ok := committed.Lookup(t, p); ok && o.At > 0 {
				at = o.At
			}
			sum += max(0, end.Offset-at)
		}
	}
	return sum, nil
}

// Register observes w's durations as two gauges of m:
// <name>.unassigned.duration and <name>.commit.age, in seconds.
func (w *Watch) Register(m metric.Meter, name, role string) error {
	_, err := m.Float64ObservableGauge(name+".unassigned.duration", metric.WithUnit("s"),
		metric.WithDescription("Time this "+role+" has held no partitions; 0 while it holds some."),
		metric.WithFloat64Callback(func(_ context.Context, o metric.Float64Observer) error {
			o.Observe(w.SinceAssignment().Seconds())
			return nil
		}))
	if err != nil {
		return fmt.Errorf("%s metrics: %w", role, err)
	}
	_, err = m.Float64ObservableGauge(name+".commit.age", metric.WithUnit("s"),
		metric.WithDescription("Time since this "+role+" last committed offsets (or started)."),
		metric.WithFloat64Callback(func(_ context.Context, o metric.Float64Observer) error {
			o.Observe(w.SinceCommit().Seconds())
			return nil
		}))
	if err != nil {
		return fmt.Errorf("%s metrics: %w", role, err)
	}
	return nil
}
