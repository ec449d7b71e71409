package cli

import (
	"context"
	"flag"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/hookstream/hookstream/fanout"
	"github.com/hookstream/hookstream/internal/groupwatch"
	"github.com/hookstream/hookstream/internal/ops"
	"github.com/hookstream/hookstream/internal/supervisor"
)

func runFanout(ctx context.Context, env Env, args []string) error {
	fs := flag.NewFlagSet("fanout", flag.ContinueOnError)
	var c common
	c.register(fs, ":9090")
	window := fs.Duration("dedupe-window", fanout.DefaultDedupeWindow, "an event id repeated within this window is fanned out once (0: no dedupe)")
	txnID := fs.String("transactional-id", "", "Kafka transactional id (default: hookstream-fanout-<hostname>-<random>, unique per process)")
	txnTimeout := fs.Duration("transaction-timeout", fanout.DefaultTransactionTimeout, "Kafka transaction timeout: how long a crashed process's open transaction holds back readers")
	var group groupFlags
	group.register(fs)
	maxBatch := fs.Int("max-batch", fanout.DefaultMaxBatch, "most events per transaction")
	linger := fs.Duration("linger", fanout.DefaultLinger, "how long a poll with fewer than --max-batch events waits for more before its transaction (0: none); adds at most this to latency")
	var parts partitionFlags
	parts.register(fs, true)
	if err := parse(fs, env, args); err != nil {
		return err
	}
	if err := c.validate(); err != nil {
		return err
	}
	switch {
	case *window < 0:
		return fmt.Errorf("%w: --dedupe-window must not be negative", ErrUsage)
	case *txnTimeout <= 0:
		return fmt.Errorf("%w: --transaction-timeout must be positive", ErrUsage)
	case *maxBatch < 1:
		return fmt.Errorf("%w: --max-batch must be at least 1", ErrUsage)
	case *linger < 0:
		return fmt.Errorf("%w: --linger must not be negative", ErrUsage)
	}
	if err := group.validate(); err != nil {
		return err
	}
	if err := parts.validate(); err != nil {
		return err
	}
	if *txnID == "" {
		*txnID = fanout.TransactionalID()
	}
	c.txnID = *txnID
	log := c.logger(env)

	// A plain client for topic creation and the subscription store; the
	// transactional session below only consumes events and produces
	// deliveries.
	d, closeDeps, err := c.deps(ctx, env, log, "hookstream-fanout", parts.topics(), false)
	if err != nil {
		return err
	}
	defer closeDeps()
	// As the deliverer's: a member without partitions, a group
	// rebalancing, or no commit while the lag grows, for twice a
	// rebalance's longest.
	watch := groupwatch.New(time.Now)
	probe := groupwatch.NewKafka(kadm.NewClient(d.kafka), fanout.Group)
	srv := d.opsServer(c.httpAddr, ops.WithCheck("group", watch.Check(2*(group.session+group.rebalance), probe)))
	if err := srv.Listen(); err != nil {
		return err
	}
	fan, err := newFanout(d, fanoutSettings{
		txnID: *txnID, window: *window, txnTimeout: *txnTimeout, group: group, maxBatch: *maxBatch, linger: *linger, watch: watch,
	})
	if err != nil {
		return err
	}
	topics := d.topics()
	log.Info("fanout starting", "http_addr", srv.Addr(), "transactional_id", *txnID,
		"events", topics.Events, "deliveries", topics.Deliveries, "dedupe_window", window.String())
	return c.serve(ctx, log,
		supervisor.Named{Name: "subscriptions", Worker: d.store},
		fan,
		supervisor.Named{Name: "ops", Worker: srv},
	)
}
