package kafkaserver_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/hookstream/hookstream/internal/groupwatch"
	"github.com/hookstream/hookstream/internal/testenv"
)

// These tests pin down two ways kfake's classic group coordinator differs
// from Apache Kafka's, which together explain the deliverer group that
// stayed in PreparingRebalance for minutes while dynamic members were
// killed and restarted every 5 s (issue 11). Each fails once kfake behaves
// like Kafka; the workaround (static membership, and readiness that
// reports a group rebalancing for too long: groupwatch.ErrRebalancing)
// can then be revisited.

const group = "g"

// member is one raw classic-protocol group member on a client of its own.
type member struct {
	cl        *kgo.Client
	id        string
	session   time.Duration
	rebalance time.Duration
}

func newMember(t *testing.T, k *testenv.Kafka, session, rebalance time.Duration) *member {
	return &member{cl: k.Client(t), session: session, rebalance: rebalance}
}

// join sends JoinGroup (again with the member id handed back on
// MEMBER_ID_REQUIRED) and waits for its answer: the end of the rebalance.
func (m *member) join(ctx context.Context) (*kmsg.JoinGroupResponse, error) {
	req := kmsg.NewPtrJoinGroupRequest()
	req.Group = group
	req.MemberID = m.id
	req.SessionTimeoutMillis = int32(m.session.Milliseconds())
	req.RebalanceTimeoutMillis = int32(m.rebalance.Milliseconds())
	req.ProtocolType = "consumer"
	p := kmsg.NewJoinGroupRequestProtocol()
	p.Name = "range"
	p.Metadata = []byte{0, 0, 0, 0, 0, 0, 0, 0}
	req.Protocols = append(req.Protocols, p)
	for {
		resp, err := req.RequestWith(ctx, m.cl)
		if err != nil {
			return nil, err
		}
		if resp.ErrorCode == kerr.MemberIDRequired.Code {
			m.id, req.MemberID = resp.MemberID, resp.MemberID
			continue
		}
		if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
			return nil, err
		}
		m.id = resp.MemberID
		return resp, nil
	}
}

// sync ends the member's part of the rebalance (the leader assigns
// nothing: the tests watch membership, not partitions).
func (m *member) sync(t *testing.T, ctx context.Context, generation int32) {
	t.Helper()
	req := kmsg.NewPtrSyncGroupRequest()
	req.Group, req.MemberID, req.Generation = group, m.id, generation
	resp, err := req.RequestWith(ctx, m.cl)
	if err == nil {
		err = kerr.ErrorForCode(resp.ErrorCode)
	}
	if err != nil {
		t.Fatalf("sync: %v", err)
	}
}

type joined struct {
	resp *kmsg.JoinGroupResponse
	err  error
	at   time.Time
}

func (m *member) joinAsync(ctx context.Context) <-chan joined {
	ch := make(chan joined, 1)
	go func() {
		resp, err := m.join(ctx)
		ch <- joined{resp, err, time.Now()}
	}()
	return ch
}

// stable makes a group of one member, a, which then stops heartbeating:
// a crashed member that has not timed out yet.
func stable(t *testing.T, ctx context.Context, a *member) {
	t.Helper()
	resp, err := a.join(ctx)
	if err != nil {
		t.Fatalf("first join: %v", err)
	}
	a.sync(t, ctx, resp.Generation)
}

// TestKfakeJoinDeadlineRestartsAtEveryJoin: Kafka ends a join phase at most
// the rebalance timeout after it began, dropping members that did not
// rejoin. kfake restarts that deadline whenever another member joins, so
// while joins keep coming more often than the rebalance timeout (a member
// restarted every 5 s with a new member id, while the one killed before it
// has not timed out) the phase never ends.
func TestKfakeJoinDeadlineRestartsAtEveryJoin(t *testing.T) {
	t.Parallel()
	k := testenv.StartKafka(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	const rebalance = time.Second
	stable(t, ctx, newMember(t, k, 30*time.Second, rebalance)) // then crashes

	begin := time.Now()
	first := newMember(t, k, 30*time.Second, rebalance).joinAsync(ctx)
	// What a member's readiness sees meanwhile (bound: 2 rebalance
	// timeouts).
	w := groupwatch.New(time.Now)
	w.Assigned(map[string][]int32{"t": {0}})
	check := w.Check(2*rebalance, groupwatch.NewKafka(kadm.NewClient(k.Client(t)), group))
	var reported error
	// A new member every 0.6 rebalance timeouts, for 4 of them.
	var later []<-chan joined
	for range 7 {
		time.Sleep(600 * time.Millisecond)
		later = append(later, newMember(t, k, 30*time.Second, rebalance).joinAsync(ctx))
		if err := check(ctx); err != nil && reported == nil {
			reported = err
		}
	}
	lastJoin := time.Now()
	j := <-first
	if j.err != nil {
		t.Fatal(j.err)
	}
	for _, ch := range later {
		<-ch
	}
	took := j.at.Sub(begin)
	t.Logf("join phase ended %v after it began (rebalance timeout %v), %v after the last join",
		took.Round(10*time.Millisecond), rebalance, j.at.Sub(lastJoin).Round(10*time.Millisecond))
	if took < 3*rebalance {
		t.Errorf("the join phase ended %v after it began: kfake now bounds it by the rebalance timeout (%v) as Kafka does", took, rebalance)
	}
	if !errors.Is(reported, groupwatch.ErrRebalancing) {
		t.Errorf("readiness during the stuck join phase: %v, want %v", reported, groupwatch.ErrRebalancing)
	}
}

// TestKfakeExpiresMembersWaitingInJoin: Kafka keeps a member waiting in
// JoinGroup alive until the join phase ends. kfake lets its session time
// out there, drops it from the group and never answers its JoinGroup: the
// client waits for its request timeout (the rebalance timeout + 10 s in
// franz-go: the deliverers' "unable to join group session: i/o timeout"
// every 70 s), then joins again, starting another rebalance.
func TestKfakeExpiresMembersWaitingInJoin(t *testing.T) {
	t.Parallel()
	k := testenv.StartKafka(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// A group of two: crashed (session 3 s) and live (session 1 s).
	crashed := newMember(t, k, 3*time.Second, 10*time.Second)
	stable(t, ctx, crashed)
	live := newMember(t, k, time.Second, 10*time.Second)
	liveFirst := live.joinAsync(ctx)
	time.Sleep(100 * time.Millisecond)
	cj, err := crashed.join(ctx) // rejoins for the new member
	if err != nil {
		t.Fatal(err)
	}
	lj := <-liveFirst
	if lj.err != nil {
		t.Fatal(lj.err)
	}
	crashed.sync(t, ctx, cj.Generation)
	live.sync(t, ctx, lj.resp.Generation)
	// Now crashed stops; a third member joins, and live rejoins at once,
	// as a member told of the rebalance does, and waits for crashed to
	// rejoin or time out.
	other := newMember(t, k, 30*time.Second, 10*time.Second)
	otherJoin := other.joinAsync(ctx)
	time.Sleep(100 * time.Millisecond)
	liveJoin := live.joinAsync(ctx)
	j := <-otherJoin
	if j.err != nil {
		t.Fatal(j.err)
	}
	var ids []string
	for _, m := range j.resp.Members {
		ids = append(ids, m.MemberID)
	}
	select {
	case l := <-liveJoin:
		t.Errorf("the member waiting in join got an answer (%v, members %v): kfake now keeps it alive as Kafka does", l.err, ids)
	case <-time.After(3 * time.Second):
		t.Logf("the rebalance ended with members %v; the member that waited in join (%s) got no answer", ids, live.id)
	}
}
