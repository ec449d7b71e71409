package cli

import (
	"context"
	"maps"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hookstream/hookstream/deliverer"
	"github.com/hookstream/hookstream/internal/testenv"
	"github.com/hookstream/hookstream/topic"
)

// member is a deliverer's group client (its options, the group flags) that
// records what the group gives and takes from it.
type member struct {
	cl                  *kgo.Client
	deliveries, retries string

	mu       sync.Mutex
	owned    map[string]map[int32]bool // topic => partitions held
	revokes  int                       // callbacks that took partitions away
	assigned time.Time
}

func startMember(t *testing.T, k *testenv.Kafka, names topic.Names, g groupFlags) *member {
	t.Helper()
	m := &member{deliveries: names.Deliveries, retries: names.Retries, owned: map[string]map[int32]bool{names.Deliveries: {}, names.Retries: {}}}
	change := func(add bool) func(context.Context, *kgo.Client, map[string][]int32) {
		return func(_ context.Context, _ *kgo.Client, ps map[string][]int32) {
			m.mu.Lock()
			defer m.mu.Unlock()
			n := 0
			for t, parts := range ps {
				for _, p := range parts {
					if add {
						m.owned[t][p] = true
					} else {
						delete(m.owned[t], p)
					}
					n++
				}
			}
			switch {
			case add:
				m.assigned = time.Now()
			case n > 0:
				m.revokes++
			}
		}
	}
	opts := append(deliverer.ClientOpts(names, "hookstream-deliverer"), g.opts()...)
	opts = append(opts, kgo.OnPartitionsAssigned(change(true)), kgo.OnPartitionsRevoked(change(false)), kgo.OnPartitionsLost(change(false)))
	m.cl = k.Client(t, opts...)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			pctx, pcancel := context.WithTimeout(ctx, time.Second)
			fs := m.cl.PollFetches(pctx)
			pcancel()
			if fs.IsClientClosed() {
				return
			}
			m.cl.AllowRebalance()
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	return m
}

// state returns how many deliveries partitions m holds.
func (m *member) state() (owned, revokes int, assigned time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.owned[m.deliveries]), m.revokes, m.assigned
}

// copartitioned reports whether m holds partition i of retries exactly
// when it holds partition i of deliveries.
func (m *member) copartitioned() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return maps.Equal(m.owned[m.deliveries], m.owned[m.retries])
}

// TestStaticMembershipRestart: a deliverer that stops with an
// --instance-id (a crash, or SIGTERM: a static member does not leave) keeps
// its partitions reserved, so nothing moves to the others and back; its
// restart gets them again at once. Without one (dynamic membership, as
// before --instance-id) the others take them over.
func TestStaticMembershipRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("joins a consumer group twice")
	}
	tests := []struct {
		name     string
		a, b     string // instance ids
		takeOver bool   // whether b takes a's partitions while a is away
	}{
		{"static", "deliverer-0", "deliverer-1", false},
		{"dynamic", "", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := testenv.StartKafka(t)
			names := k.CreateTopics(t, topic.DefaultPrefix, topic.Partitions{Events: 1, Deliveries: 4, Other: -1})
			g := groupFlags{session: 6 * time.Second, rebalance: 10 * time.Second}
			ga, gb := g, g
			ga.instance, gb.instance = tt.a, tt.b
			a := startMember(t, k, names, ga)
			b := startMember(t, k, names, gb)
			testenv.Eventually(t, time.Minute, "both members assigned", func() bool {
				oa, _, _ := a.state()
				ob, _, _ := b.state()
				return oa > 0 && ob > 0 && oa+ob == 4
			})
			aOwned, _, _ := a.state()
			bOwned, _, _ := b.state()

			a.cl.Close()
			if tt.takeOver {
				testenv.Eventually(t, time.Minute, "b takes all partitions", func() bool { o, _, _ := b.state(); return o == 4 })
				return
			}
			// A take-over would come at the leave's rebalance, within
			// milliseconds; a second is generous.
			time.Sleep(time.Second)
			if o, _, _ := b.state(); o != bOwned {
				t.Fatalf("b holds %d partitions while a is away, want its %d", o, bOwned)
			}
			start := time.Now()
			a2 := startMember(t, k, names, ga)
			testenv.Eventually(t, time.Minute, "the restarted member assigned", func() bool { o, _, _ := a2.state(); return o > 0 })
			_, _, at := a2.state()
			t.Logf("restarted member assigned after %v", at.Sub(start).Round(time.Millisecond))
			if o, _, _ := a2.state(); o != aOwned {
				t.Errorf("restarted member holds %d partitions, want its %d", o, aOwned)
			}
			if d := at.Sub(start); d >= g.session {
				t.Errorf("restarted member assigned after %v, want under the session timeout %v", d, g.session)
			}
		})
	}
}

// TestMemberLeavesOthersKeepDelivering: when a deliverer of three goes,
// the other two keep their partitions (nothing revoked, as the eager range
// balancer did) and share the gone member's, partition i of deliveries and
// retries on one member.
func TestMemberLeavesOthersKeepDelivering(t *testing.T) {
	if testing.Short() {
		t.Skip("joins a consumer group")
	}
	k := testenv.StartKafka(t)
	names := k.CreateTopics(t, topic.DefaultPrefix, topic.Partitions{Events: 1, Deliveries: 6, Other: -1})
	g := groupFlags{session: 6 * time.Second, rebalance: 10 * time.Second}
	ms := []*member{startMember(t, k, names, g), startMember(t, k, names, g), startMember(t, k, names, g)}
	testenv.Eventually(t, time.Minute, "three members with two partitions each", func() bool {
		for _, m := range ms {
			if o, _, _ := m.state(); o != 2 {
				return false
			}
		}
		return true
	})
	_, r1, _ := ms[1].state()
	_, r2, _ := ms[2].state()
	ms[0].cl.Close()
	testenv.Eventually(t, time.Minute, "the two left with three partitions each", func() bool {
		o1, _, _ := ms[1].state()
		o2, _, _ := ms[2].state()
		return o1 == 3 && o2 == 3
	})
	if _, r, _ := ms[1].state(); r != r1 {
		t.Errorf("member 1: %d revokes, want none", r-r1)
	}
	if _, r, _ := ms[2].state(); r != r2 {
		t.Errorf("member 2: %d revokes, want none", r-r2)
	}
	for i, m := range ms[1:] {
		if !m.copartitioned() {
			t.Errorf("member %d: deliveries and retries partitions differ", i+1)
		}
	}
}
