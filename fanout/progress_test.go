package fanout_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hookstream/hookstream/fanout"
	"github.com/hookstream/hookstream/internal/groupwatch"
	"github.com/hookstream/hookstream/internal/testenv"
	"github.com/hookstream/hookstream/subscription"
)

// revokes counts the partitions the group took from one member, and what
// it holds.
type revokes struct {
	mu    sync.Mutex
	n     int
	owned map[int32]bool
}

func (r *revokes) opts() []kgo.Opt {
	change := func(add bool) func(context.Context, *kgo.Client, map[string][]int32) {
		return func(_ context.Context, _ *kgo.Client, m map[string][]int32) {
			r.mu.Lock()
			defer r.mu.Unlock()
			for _, ps := range m {
				for _, p := range ps {
					if add {
						r.owned[p] = true
						continue
					}
					delete(r.owned, p)
					r.n++
				}
			}
		}
	}
	return []kgo.Opt{kgo.OnPartitionsAssigned(change(true)), kgo.OnPartitionsRevoked(change(false)), kgo.OnPartitionsLost(change(false))}
}

func (r *revokes) state() (owned, revoked int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.owned), r.n
}

// TestCooperativeRebalance: a fanout joining or leaving takes from the
// other only the partitions that must move (an eager balancer revokes all
// of them at every join and leave, stopping the fanout in between).
func TestCooperativeRebalance(t *testing.T) {
	t.Parallel()
	r := newRig(t, 6)
	a := &revokes{owned: map[int32]bool{}}
	r.startOn(t, r.names, fanout.Group, nil, a.opts())
	testenv.Eventually(t, 30*time.Second, "the first fanout holding all 6 partitions", func() bool { o, _ := a.state(); return o == 6 })

	b := &revokes{owned: map[int32]bool{}}
	stopB := r.startOn(t, r.names, fanout.Group, nil, b.opts()).stop
	testenv.Eventually(t, 30*time.Second, "3 partitions each", func() bool {
		oa, _ := a.state()
		ob, _ := b.state()
		return oa == 3 && ob == 3
	})
	if _, n := a.state(); n != 3 {
		t.Errorf("the join revoked %d partitions from the first fanout, want the 3 that moved", n)
	}
	if err := stopB(); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 30*time.Second, "the first fanout holding all 6 again", func() bool { o, _ := a.state(); return o == 6 })
	if _, n := a.state(); n != 3 {
		t.Errorf("the leave revoked %d more partitions from the first fanout, want none", n-3)
	}
}

// downMatcher fails every Refresh while down is set: Redis unreachable.
type downMatcher struct {
	*subscription.Store
	down atomic.Bool
}

func (m *downMatcher) Refresh(ctx context.Context) error {
	if m.down.Load() {
		return errors.New("injected: redis unreachable")
	}
	return m.Store.Refresh(ctx)
}

// TestGroupCheck: of two fanouts over one partition, the one without it
// fails the group check once past the bound; the holder fails it once it
// has not committed past the bound while its lag grew (its matcher down),
// and passes again once it commits.
func TestGroupCheck(t *testing.T) {
	t.Parallel()
	r := newRig(t, 1)
	const bound = 500 * time.Millisecond
	probe := groupwatch.NewKafka(kadm.NewClient(r.raw), fanout.Group)
	start := func(m fanout.Matcher) (func(context.Context) error, *groupwatch.Watch) {
		w := groupwatch.New(time.Now)
		r.startOn(t, r.names, fanout.Group, m, w.ClientOpts(), fanout.WithWatch(w))
		return w.Check(bound, probe), w
	}
	r.endpoint(t, "acme", "*")
	m := &downMatcher{Store: r.store(t)}
	checkA, wa := start(m)
	testenv.Eventually(t, 30*time.Second, "the first fanout holding the partition", func() bool { return wa.SinceAssignment() == 0 })
	ctx := ctxFor(t, time.Minute)
	r.publish(t, ctx, "acme", "agent.created")
	r.waitProcessed(t)
	checkB, _ := start(nil)
	testenv.Eventually(t, 30*time.Second, "the idle fanout failing the check", func() bool {
		return errors.Is(checkB(context.Background()), groupwatch.ErrUnassigned)
	})
	if err := checkA(context.Background()); err != nil {
		t.Errorf("holder while the other idles: %v", err)
	}

	m.down.Store(true)
	testenv.Eventually(t, 30*time.Second, "the holder failing the check while its lag grows", func() bool {
		r.publish(t, ctx, "acme", "agent.created")
		return errors.Is(checkA(context.Background()), groupwatch.ErrStalled)
	})
	m.down.Store(false)
	testenv.Eventually(t, 30*time.Second, "the holder passing once it commits", func() bool { return checkA(context.Background()) == nil })
	r.waitProcessed(t)
}
