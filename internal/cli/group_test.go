package cli

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hookstream/hookstream/deliverer"
	"github.com/hookstream/hookstream/internal/testenv"
	"github.com/hookstream/hookstream/internal/topic"
)

// member is a deliverer's group client (its options, the group flags) that
// records what the group gives and takes from it.
type member struct {
	cl *kgo.Client

	mu       sync.Mutex
	owned    int // partitions of the deliveries topic held
	revokes  int // callbacks that took partitions away
	assigned time.Time
}

func startMember(t *testing.T, k *testenv.Kafka, names topic.Names, g groupFlags) *member {
	t.Helper()
	m := &member{}
	change := func(add bool) func(context.Context, *kgo.Client, map[string][]int32) {
		return func(_ context.Context, _ *kgo.Client, ps map[string][]int32) {
			m.mu.Lock()
			defer m.mu.Unlock()
			if add {
				m.owned += len(ps[names.Deliveries])
				m.assigned = time.Now()
			} else if len(ps[names.Deliveries]) > 0 {
				m.owned -= len(ps[names.Deliveries])
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
			m.cl.PollFetches(pctx)
			pcancel()
			m.cl.AllowRebalance()
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	return m
}

func (m *member) state() (owned, revokes int, assigned time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.owned, m.revokes, m.assigned
}

// TestStaticMembershipRestart: a deliverer restarted with its --instance-id
// gets its partitions back without a rebalance, so the other member's
// partitions never stop; without one (the dynamic membership before
// --instance-id) the restart takes the other member's partitions away.
func TestStaticMembershipRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("joins a consumer group twice")
	}
	tests := []struct {
		name        string
		a, b        string // instance ids
		wantRevoked bool
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
			eventually(t, "both members assigned", func() bool {
				oa, _, _ := a.state()
				ob, _, _ := b.state()
				return oa > 0 && ob > 0 && oa+ob == 4
			})
			aOwned, _, _ := a.state()
			bOwned, bRevokes, _ := b.state()

			a.cl.Close()
			start := time.Now()
			a2 := startMember(t, k, names, ga)
			eventually(t, "the restarted member assigned", func() bool {
				o, _, _ := a2.state()
				ob, _, _ := b.state()
				return o > 0 && o+ob == 4
			})
			_, _, at := a2.state()
			t.Logf("restarted member assigned after %v", at.Sub(start).Round(time.Millisecond))
			o2, _, _ := a2.state()
			ob, revokes, _ := b.state()
			if revoked := revokes > bRevokes; revoked != tt.wantRevoked {
				t.Errorf("other member's partitions revoked: %v, want %v", revoked, tt.wantRevoked)
			}
			if !tt.wantRevoked {
				if o2 != aOwned || ob != bOwned {
					t.Errorf("after the restart %d+%d partitions, want the same %d+%d", o2, ob, aOwned, bOwned)
				}
				// Static: the old assignment comes back at the join, not
				// after the session timeout.
				if d := at.Sub(start); d >= g.session {
					t.Errorf("restarted member assigned after %v, want under the session timeout %v", d, g.session)
				}
			}
		})
	}
}
