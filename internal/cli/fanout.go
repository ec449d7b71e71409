package cli

import (
	"context"
	"flag"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hookstream/hookstream/fanout"
	"github.com/hookstream/hookstream/internal/supervisor"
	"github.com/hookstream/hookstream/internal/topic"
	"github.com/hookstream/hookstream/schemas"
	"github.com/hookstream/hookstream/subscription"
)

func runFanout(ctx context.Context, env Env, args []string) error {
	fs := flag.NewFlagSet("fanout", flag.ContinueOnError)
	var c common
	c.register(fs, ":9090")
	window := fs.Duration("dedupe-window", fanout.DefaultDedupeWindow, "an event id repeated within this window is fanned out once (0: no dedupe)")
	txnID := fs.String("transactional-id", "", "Kafka transactional id (default: hookstream-fanout-<hostname>-<random>, unique per process)")
	txnTimeout := fs.Duration("transaction-timeout", fanout.DefaultTransactionTimeout, "Kafka transaction timeout: how long a crashed process's open transaction holds back readers")
	session := fs.Duration("session-timeout", 45*time.Second, "consumer group session timeout: how soon a dead member's partitions move")
	rebalance := fs.Duration("rebalance-timeout", time.Minute, "consumer group rebalance timeout")
	maxBatch := fs.Int("max-batch", fanout.DefaultMaxBatch, "most events per transaction")
	partEvents := fs.Int("partitions-events", -1, "partitions of the events topic when creating it (-1: broker default)")
	partDeliveries := fs.Int("partitions-deliveries", -1, "partitions of the deliveries and retries topics when creating them (-1: broker default)")
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
	case *session <= 0:
		return fmt.Errorf("%w: --session-timeout must be positive", ErrUsage)
	case *rebalance <= 0:
		return fmt.Errorf("%w: --rebalance-timeout must be positive", ErrUsage)
	case *maxBatch < 1:
		return fmt.Errorf("%w: --max-batch must be at least 1", ErrUsage)
	case *partEvents == 0 || *partEvents < -1:
		return fmt.Errorf("%w: --partitions-events must be -1 or at least 1", ErrUsage)
	case *partDeliveries == 0 || *partDeliveries < -1:
		return fmt.Errorf("%w: --partitions-deliveries must be -1 or at least 1", ErrUsage)
	}
	if *txnID == "" {
		*txnID = fanout.TransactionalID()
	}
	log := c.logger(env)
	topics := c.topics()

	tel, stopTelemetry, err := setupTelemetry(ctx, env, "hookstream-fanout")
	if err != nil {
		return err
	}
	defer stopTelemetry()

	// A plain client for topic creation and the subscription store; the
	// transactional session below only consumes events and produces
	// deliveries.
	kc, err := kgo.NewClient(c.kafkaOpts(tel)...)
	if err != nil {
		return fmt.Errorf("kafka client: %w", err)
	}
	defer kc.Close()
	tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	err = topic.Ensure(tctx, kadm.NewClient(kc), topics, topic.Partitions{
		Events: int32(*partEvents), Deliveries: int32(*partDeliveries), Other: -1,
	})
	cancel()
	if err != nil {
		return err
	}

	rdb, err := c.redisClient()
	if err != nil {
		return err
	}
	defer func() { _ = rdb.Close() }()
	catalog, err := schemas.Load()
	if err != nil {
		return err
	}
	store := subscription.NewStore(kc, rdb, catalog, subscription.WithTopicPrefix(c.prefix), subscription.WithLogger(log))
	d := &roleDeps{log: log, prefix: c.prefix, brokers: c.brokers, kafka: kc, rdb: rdb, catalog: catalog, store: store, tel: tel}
	srv := d.opsServer(c.httpAddr)
	if err := srv.Listen(); err != nil {
		return err
	}
	fan, err := newFanout(d, fanoutSettings{
		txnID: *txnID, window: *window, txnTimeout: *txnTimeout,
		session: *session, rebalance: *rebalance, maxBatch: *maxBatch,
	})
	if err != nil {
		return err
	}
	log.Info("fanout starting", "http_addr", srv.Addr(), "transactional_id", *txnID,
		"events", topics.Events, "deliveries", topics.Deliveries, "dedupe_window", window.String())
	return c.serve(ctx, log,
		supervisor.Named{Name: "subscriptions", Worker: store},
		fan,
		supervisor.Named{Name: "ops", Worker: srv},
	)
}
