package deliverer_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hookstream/hookstream/deliverer"
	"github.com/hookstream/hookstream/internal/testenv"
	"github.com/hookstream/hookstream/sender"
	"github.com/hookstream/hookstream/subscription"
)

// TestAssignmentCheck: of two deliverers over one partition, the one
// without it fails the readiness check once past the bound, the other
// passes; when the holder stops, the partition moves and the check passes.
func TestAssignmentCheck(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 1)
	const bound = 500 * time.Millisecond
	start := func() (func(context.Context) error, func() error) {
		d, err := deliverer.New(kafkaOpts(e.kafka.Addr), e.store, sender.New(sender.WithAllowPrivate(true)),
			deliverer.WithTopics(e.topics), deliverer.WithLogger(testLogger()), deliverer.WithCommitInterval(100*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		return d.AssignmentCheck(bound), testenv.Run(t, d)
	}
	checkA, stopA := start()
	testenv.Eventually(t, 30*time.Second, "the first deliverer holding the partition", func() bool { return checkA(context.Background()) == nil })
	time.Sleep(bound) // a check failing only past the bound could not fail sooner
	if err := checkA(context.Background()); err != nil {
		t.Fatalf("holder: %v", err)
	}
	checkB, _ := start()
	testenv.Eventually(t, 30*time.Second, "the idle deliverer failing the check", func() bool {
		return errors.Is(checkB(context.Background()), deliverer.ErrUnassigned)
	})
	if err := checkA(context.Background()); err != nil {
		t.Errorf("holder while the other idles: %v", err)
	}
	if err := stopA(); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 30*time.Second, "the partition moved to the idle deliverer", func() bool { return checkB(context.Background()) == nil })
}

// downEndpoints fails every lookup while down is set: Redis unreachable.
type downEndpoints struct {
	deliverer.Endpoints
	down atomic.Bool
}

func (d *downEndpoints) Endpoint(ctx context.Context, id string) (*subscription.Endpoint, error) {
	if d.down.Load() {
		return nil, errors.New("injected: redis unreachable")
	}
	return d.Endpoints.Endpoint(ctx, id)
}

// TestAssignmentCheckStalled: a deliverer that cannot look endpoints up
// holds its records, commits nothing while deliveries keep coming, and
// fails the check once past the bound; it passes again once it delivers
// and commits.
func TestAssignmentCheckStalled(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 1)
	const bound = 500 * time.Millisecond
	rc := newReceiver(t, nil)
	ep := e.endpoint(t, rc.srv.URL, "")
	rc.setSecret(ep)
	eps := &downEndpoints{Endpoints: e.store}
	d, err := deliverer.New(kafkaOpts(e.kafka.Addr), eps, sender.New(sender.WithAllowPrivate(true)),
		deliverer.WithTopics(e.topics), deliverer.WithLogger(testLogger()), deliverer.WithCommitInterval(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	check := d.AssignmentCheck(bound)
	testenv.Run(t, d)
	n := 1
	e.deliver(t, ep, 0, n, n)
	testenv.Eventually(t, 30*time.Second, "the first delivery", func() bool { return rc.delivered() == 1 })

	eps.down.Store(true)
	testenv.Eventually(t, 30*time.Second, "the check failing while the lag grows", func() bool {
		n++
		e.deliver(t, ep, 0, n, n)
		return errors.Is(check(context.Background()), deliverer.ErrStalled)
	})
	eps.down.Store(false)
	testenv.Eventually(t, 30*time.Second, "the check passing once it commits", func() bool { return check(context.Background()) == nil })
	allDelivered(t, 30*time.Second, "every delivery", []*receiver{rc}, n)
}
