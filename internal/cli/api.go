package cli

import (
	"context"
	"flag"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hookstream/hookstream/envelope"
	"github.com/hookstream/hookstream/internal/api"
	"github.com/hookstream/hookstream/internal/supervisor"
	"github.com/hookstream/hookstream/internal/topic"
	"github.com/hookstream/hookstream/producer"
	"github.com/hookstream/hookstream/schemas"
	"github.com/hookstream/hookstream/subscription"
)

// maxEventSizeLimit keeps an event, with key and headers, inside Kafka's
// default 1 MB message limit (and franz-go's default batch size).
const maxEventSizeLimit = 960 << 10

func runAPI(ctx context.Context, env Env, args []string) error {
	fs := flag.NewFlagSet("api", flag.ContinueOnError)
	var c common
	c.register(fs, ":8080")
	tokenList := fs.String("api-tokens", "", "bearer tokens: token=tenant,token2=tenant2 (token=* is an admin token for every tenant)")
	maxEventSize := fs.Int("max-event-size", envelope.DefaultMaxSize, "largest encoded event envelope accepted, in bytes")
	publishTimeout := fs.Duration("publish-timeout", api.DefaultPublishTimeout, "how long POST /v1/events waits for Kafka before answering 503")
	partEvents := fs.Int("partitions-events", -1, "partitions of the events topic when creating it (-1: broker default)")
	partDeliveries := fs.Int("partitions-deliveries", -1, "partitions of the deliveries and retries topics when creating them (-1: broker default)")
	allowPrivate := fs.Bool("allow-private-destinations", false, "allow endpoint URLs on loopback, private and link-local addresses")
	if err := parse(fs, env, args); err != nil {
		return err
	}
	if err := c.validate(); err != nil {
		return err
	}
	tokens, err := api.ParseTokens(*tokenList)
	if err != nil {
		return fmt.Errorf("%w: --api-tokens: %w", ErrUsage, err)
	}
	switch {
	case *maxEventSize < 1 || *maxEventSize > maxEventSizeLimit:
		return fmt.Errorf("%w: --max-event-size must be between 1 and %d bytes", ErrUsage, maxEventSizeLimit)
	case *publishTimeout < time.Second:
		return fmt.Errorf("%w: --publish-timeout must be at least 1s", ErrUsage)
	case *partEvents == 0 || *partEvents < -1:
		return fmt.Errorf("%w: --partitions-events must be -1 or at least 1", ErrUsage)
	case *partDeliveries == 0 || *partDeliveries < -1:
		return fmt.Errorf("%w: --partitions-deliveries must be -1 or at least 1", ErrUsage)
	}
	log := c.logger(env)
	if len(tokens) == 0 {
		log.Warn("no --api-tokens: every API request will be answered 401")
	}

	tel, stopTelemetry, err := setupTelemetry(ctx, env, "hookstream-api")
	if err != nil {
		return err
	}
	defer stopTelemetry()

	// The client's delivery timeout matches the API's, so an event answered
	// with 503 is never produced later.
	kc, err := kgo.NewClient(c.kafkaOpts(tel, producer.ClientOpts(*publishTimeout)...)...)
	if err != nil {
		return fmt.Errorf("kafka client: %w", err)
	}
	defer kc.Close()
	catalog, err := schemas.Load()
	if err != nil {
		return err
	}
	p := producer.New(kc, catalog,
		producer.WithTopicPrefix(c.prefix),
		producer.WithMaxSize(*maxEventSize),
		producer.WithPartitions(topic.Partitions{Events: int32(*partEvents), Deliveries: int32(*partDeliveries), Other: -1}),
		producer.WithMeterProvider(tel.Meter),
	)
	tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	err = p.EnsureTopics(tctx)
	cancel()
	if err != nil {
		return fmt.Errorf("kafka at %s (--kafka-brokers) unreachable or refusing topic creation: %w", c.brokers.String(), err)
	}

	rdb, err := c.redisClient()
	if err != nil {
		return err
	}
	defer func() { _ = rdb.Close() }()

	store := subscription.NewStore(kc, rdb, catalog,
		subscription.WithTopicPrefix(c.prefix),
		subscription.WithAllowPrivate(*allowPrivate),
		subscription.WithLogger(log))
	d := &roleDeps{log: log, prefix: c.prefix, brokers: c.brokers, kafka: kc, rdb: rdb, catalog: catalog, store: store, tel: tel}
	server := newAPI(d, p, apiSettings{tokens: tokens, publishTimeout: *publishTimeout})
	srv := d.opsServer(c.httpAddr, apiRoutes(server)...)
	if err := srv.Listen(); err != nil {
		return err
	}
	log.Info("api starting", "http_addr", srv.Addr(), "events", c.topics().Events, "tokens", len(tokens))
	return c.serve(ctx, log, supervisor.Named{Name: "http", Worker: srv}, supervisor.Named{Name: "endpoints", Worker: store})
}
