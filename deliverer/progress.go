package deliverer

import (
	"context"
	"errors"
	"time"

	"github.com/hookstream/hookstream/internal/groupwatch"
)

// ErrUnassigned is the readiness error of a deliverer that has held no
// partition for longer than its bound: its group is stuck in a rebalance,
// or the group has more members than partitions.
var ErrUnassigned = groupwatch.ErrUnassigned

// ErrStalled is the readiness error of a deliverer that holds partitions
// and has not committed for longer than its bound while their lag grew.
var ErrStalled = groupwatch.ErrStalled

// ErrRebalancing is the readiness error of a deliverer whose group has
// been rebalancing for longer than its bound.
var ErrRebalancing = groupwatch.ErrRebalancing

// AssignmentCheck is a readiness check: it fails once the deliverer has
// held no partitions for longer than bound, or its group has been
// rebalancing that long, or it has held partitions without committing for
// longer than bound while their lag grew (see groupwatch.Watch.Check). Set
// bound above the session plus rebalance timeouts, so that an ordinary
// rebalance passes, and above the park threshold and request timeout,
// which may hold a commit back.
func (d *Deliverer) AssignmentCheck(bound time.Duration) func(context.Context) error {
	return d.watch.Check(bound, probe{d})
}

// probe is the group's groupwatch.Probe once Run has built the client.
type probe struct{ d *Deliverer }

var errNotRunning = errors.New("deliverer: not running")

func (p probe) kafka() (*groupwatch.Kafka, error) {
	select {
	case <-p.d.ready:
		return groupwatch.NewKafka(p.d.adm, p.d.cfg.group), nil
	default:
		return nil, errNotRunning
	}
}

func (p probe) Lag(ctx context.Context, held map[string][]int32) (int64, error) {
	k, err := p.kafka()
	if err != nil {
		return 0, err
	}
	return k.Lag(ctx, held)
}

func (p probe) State(ctx context.Context) (string, error) {
	k, err := p.kafka()
	if err != nil {
		return "", err
	}
	return k.State(ctx)
}
