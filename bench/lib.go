package main

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"os"
	"sync"
	"sync/atomic"

	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hookstream/hookstream/producer"
	"github.com/hookstream/hookstream/schemas"
	"github.com/hookstream/hookstream/subscription"
)

// libPublisher publishes through the producer library, as a platform
// service would: one franz-go client with its default producer settings
// (idempotent, acks=all), shared by every goroutine.
type libPublisher struct {
	client *kgo.Client
	prod   *producer.Producer
}

func newLibPublisher(_ context.Context, brokers string) (publisher, error) {
	catalog, err := schemas.Load()
	if err != nil {
		return nil, fmt.Errorf("catalog: %w", err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers))
	if err != nil {
		return nil, fmt.Errorf("kafka client: %w", err)
	}
	return &libPublisher{client: cl, prod: producer.New(cl, catalog)}, nil
}

func (p *libPublisher) Publish(ctx context.Context, tenant string, data []byte) error {
	_, err := p.prod.Publish(ctx, tenant, eventType, data)
	return err
}

func (p *libPublisher) Close() { p.client.Close() }

// runStore runs an endpoint store in this process, as the api role does,
// until closeStore is called. Every process using a Store runs it: it
// builds the Redis cache when no role has yet, as in the fanout-alone runs.
func runStore(ctx context.Context, brokers, redisURL string) (store *subscription.Store, closeStore func(), err error) {
	catalog, err := schemas.Load()
	if err != nil {
		return nil, nil, fmt.Errorf("catalog: %w", err)
	}
	ro, err := redis.ParseURL(redisURL)
	if err != nil {
		return nil, nil, err
	}
	kc, err := kgo.NewClient(kgo.SeedBrokers(brokers))
	if err != nil {
		return nil, nil, fmt.Errorf("kafka client: %w", err)
	}
	rdb := redis.NewClient(ro)
	// The fan-out scale scenario puts 100,000 endpoints in one tenant.
	store = subscription.NewStore(kc, rdb, catalog, subscription.WithAllowPrivate(true), subscription.WithMaxEndpoints(math.MaxInt32),
		subscription.WithLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))))
	rctx, stop := context.WithCancel(ctx)
	ran := make(chan struct{})
	go func() { _ = store.Run(rctx); close(ran) }()
	return store, func() {
		stop()
		<-ran
		_ = rdb.Close()
		kc.Close()
	}, nil
}

// createEndpointsStore creates the endpoints as the api role does, through
// subscription.Store in this process; see createEndpoints for the layout.
func createEndpointsStore(ctx context.Context, brokers, redisURL string, rs *receivers, n, fanout, tenants int) (endpointsCreated, error) {
	out := endpointsCreated{ids: make([]string, n), secrets: make([]string, n)}
	store, closeStore, err := runStore(ctx, brokers, redisURL)
	if err != nil {
		return out, err
	}
	defer closeStore()
	var next atomic.Int64
	var mu sync.Mutex
	var errs []error
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				ep, err := store.Create(ctx, tenantName(endpointTenant(i, fanout, tenants)), subscription.EndpointInput{
					URL:       rs.url(i),
					Events:    []string{"*"},
					Signature: subscription.SchemeStandard,
					Ordering:  subscription.OrderingStrict,
				})
				if err != nil {
					mu.Lock()
					errs = append(errs, fmt.Errorf("endpoint %d: %w", i, err))
					mu.Unlock()
					return
				}
				out.ids[i], out.secrets[i] = ep.ID, ep.Secrets[0].Value
			}
		})
	}
	wg.Wait()
	if len(errs) > 0 {
		return out, errs[0]
	}
	return out, ctx.Err()
}
