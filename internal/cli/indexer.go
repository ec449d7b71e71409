package cli

import (
	"context"
	"flag"
	"fmt"
	"time"

	"github.com/hookstream/hookstream/deliverer"
	"github.com/hookstream/hookstream/internal/deliverylog"
	"github.com/hookstream/hookstream/internal/supervisor"
)

func runIndexer(ctx context.Context, env Env, args []string) error {
	fs := flag.NewFlagSet("indexer", flag.ContinueOnError)
	var c common
	c.register(fs, ":9090")
	retention := fs.Duration("log-retention", deliverylog.DefaultRetention, "how long delivery attempts stay queryable in the delivery log")
	schedule := fs.String("retry-schedule", defaultRetrySchedule, "the deliverers' retry schedule, to show when a failed delivery's next attempt is due")
	// Partition counts of the topics it creates when it starts first, like
	// every role that creates them.
	var parts partitionFlags
	parts.register(fs, true)
	if err := parse(fs, env, args); err != nil {
		return err
	}
	if err := parts.validate(); err != nil {
		return err
	}
	if err := c.validate(); err != nil {
		return err
	}
	if *retention <= 0 {
		return fmt.Errorf("%w: --log-retention must be positive", ErrUsage)
	}
	sched, err := parseSchedule(*schedule)
	if err != nil {
		return err
	}
	log := c.logger(env)
	d, closeDeps, err := c.deps(ctx, env, log, "hookstream-indexer", parts.topics(), false)
	if err != nil {
		return err
	}
	defer closeDeps()
	srv := d.opsServer(c.httpAddr)
	if err := srv.Listen(); err != nil {
		return err
	}
	log.Info("indexer starting", "http_addr", srv.Addr(), "attempts", d.topics().Attempts, "retention", retention.String())
	return c.serve(ctx, log,
		newIndexer(d, *retention, sched),
		supervisor.Named{Name: "ops", Worker: srv},
	)
}

// newIndexer is the delivery log's indexer over d's Kafka and Redis.
func newIndexer(d *roleDeps, retention time.Duration, schedule deliverer.Schedule) supervisor.Named {
	t := d.topics()
	x := deliverylog.NewIndexer(deliverylog.IndexerConfig{
		Topic: t.Attempts, Dead: t.Dead, Matches: t.Matches, Retries: t.Retries,
		Retention: retention, Schedule: schedule, Log: d.log, KafkaOpts: d.kafkaOpts(),
	}, d.rdb)
	return supervisor.Named{Name: "indexer", Worker: x}
}
