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

// AssignmentCheck is a readiness check: it fails once the deliverer has
// held no partitions for longer than bound, or has held some without
// committing for longer than bound while their lag grew (see
// groupwatch.Watch.Check). Set bound above the session plus rebalance
// timeouts, so that an ordinary rebalance passes, and above the park
// threshold and request timeout, which may hold a commit back.
func (d *Deliverer) AssignmentCheck(bound time.Duration) func(context.Context) error {
	lag := func(ctx context.Context, held map[string][]int32) (int64, error) {
		select {
		case <-d.ready:
			return groupwatch.KafkaLag(d.adm, d.cfg.group)(ctx, held)
		default:
			return 0, errNotRunning
		}
	}
	return d.watch.Check(bound, lag)
}

var errNotRunning = errors.New("deliverer: not running")
