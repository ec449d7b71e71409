package cli

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hookstream/hookstream/deliverer"
	"github.com/hookstream/hookstream/fanout"
	"github.com/hookstream/hookstream/internal/api"
	"github.com/hookstream/hookstream/internal/deliverylog"
	"github.com/hookstream/hookstream/internal/groupwatch"
	"github.com/hookstream/hookstream/internal/ops"
	"github.com/hookstream/hookstream/internal/portal"
	"github.com/hookstream/hookstream/internal/supervisor"
	"github.com/hookstream/hookstream/internal/telemetry"
	"github.com/hookstream/hookstream/producer"
	"github.com/hookstream/hookstream/schemas"
	"github.com/hookstream/hookstream/sender"
	"github.com/hookstream/hookstream/signature"
	"github.com/hookstream/hookstream/subscription"
	"github.com/hookstream/hookstream/topic"
)

// roleDeps are what the roles are built on. A role's command builds them for
// itself; `hookstream dev` builds them once and every role shares them, one
// endpoint store included.
type roleDeps struct {
	log     *slog.Logger
	prefix  string // topic prefix
	brokers []string
	sec     []kgo.Opt   // TLS and SASL of every Kafka client
	kafka   *kgo.Client // plain client: the endpoint store, topic creation, endpoint.disabled events
	rdb     redis.UniversalClient
	catalog *schemas.Catalog
	store   *subscription.Store
	tel     *telemetry.Telemetry
}

// deps builds the roleDeps of a role's command from the common flags:
// telemetry for service, a plain Kafka client (with extra options), the
// Redis client, the catalog and the endpoint store; and it creates the
// topics that are missing with the partition counts p. closeDeps releases
// what it built once the role has stopped.
func (c *common) deps(ctx context.Context, env Env, log *slog.Logger, service string, p topic.Partitions, allowPrivate bool, extra ...kgo.Opt) (d *roleDeps, closeDeps func(), err error) {
	sec, err := c.kafkaSec.opts(env)
	if err != nil {
		return nil, nil, err
	}
	catalog, err := schemas.Load()
	if err != nil {
		return nil, nil, err
	}
	useRedisLogger(log)
	rdb, err := c.redisClient()
	if err != nil {
		return nil, nil, err
	}
	tel, stopTelemetry, err := setupTelemetry(ctx, env, service)
	if err != nil {
		_ = rdb.Close()
		return nil, nil, err
	}
	kc, err := kgo.NewClient(c.kafkaOpts(tel, append(slices.Clone(sec), extra...)...)...)
	if err != nil {
		stopTelemetry()
		_ = rdb.Close()
		return nil, nil, fmt.Errorf("kafka client: %w", err)
	}
	closeDeps = func() {
		_ = rdb.Close()
		kc.Close()
		stopTelemetry()
	}
	d = &roleDeps{log: log, prefix: c.prefix, brokers: c.brokers, sec: sec, kafka: kc, rdb: rdb, catalog: catalog, tel: tel}
	if err := d.probeACLs(ctx, strings.TrimPrefix(service, "hookstream-"), c.txnID); err != nil {
		closeDeps()
		return nil, nil, err
	}
	if err := d.ensureTopics(ctx, p); err != nil {
		closeDeps()
		return nil, nil, fmt.Errorf("kafka at %s (--kafka-brokers) unreachable or refusing topic creation: %w", c.brokers.String(), err)
	}
	if err := d.checkTopics(ctx, c.topicChk.requirements()); err != nil {
		closeDeps()
		return nil, nil, err
	}
	d.store = d.newStore(allowPrivate, c.storeOpts...)
	return d, closeDeps, nil
}

// newStore is the endpoint store over d's Kafka and Redis clients, with
// extra options (signature brand, endpoint quota).
func (d *roleDeps) newStore(allowPrivate bool, extra ...subscription.Option) *subscription.Store {
	opts := []subscription.Option{
		subscription.WithTopicPrefix(d.prefix),
		subscription.WithAllowPrivate(allowPrivate),
		subscription.WithLogger(d.log),
	}
	return subscription.NewStore(d.kafka, d.rdb, d.catalog, append(opts, extra...)...)
}

func (d *roleDeps) topics() topic.Names { return topic.New(d.prefix) }

// ensureTopics creates the topics that are missing, with the partition
// counts p.
func (d *roleDeps) ensureTopics(ctx context.Context, p topic.Partitions) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	return topic.Ensure(ctx, kadm.NewClient(d.kafka), d.topics(), p)
}

// kafkaOpts are the client options every role's clients start from.
func (d *roleDeps) kafkaOpts(extra ...kgo.Opt) []kgo.Opt {
	return kafkaOpts(d.brokers, d.tel, append(slices.Clone(d.sec), extra...)...)
}

// opsServer is a role's HTTP server: /healthz, /readyz (Kafka and Redis
// reachable), /metrics, plus extra (the API's routes).
func (d *roleDeps) opsServer(addr string, extra ...ops.Option) *ops.Server {
	opts := []ops.Option{
		ops.WithCheck("kafka", ops.KafkaCheck(d.kafka)),
		ops.WithCheck("redis", ops.RedisCheck(d.rdb)),
		ops.WithMetrics(d.tel.MetricsHandler()),
	}
	return ops.New(addr, append(opts, extra...)...)
}

// apiSettings are the api role's flag values.
type apiSettings struct {
	tokens         api.Tokens
	backendTimeout time.Duration
	logRetention   time.Duration    // the delivery log's window; 0: the default
	brand          string           // "": signature.DefaultBrand
	portal         *portal.Sessions // nil: no portal (portal.go)
	portalURL      string
	jobs           api.Jobs // nil: the recovery routes answer 503
}

// newAPI builds the HTTP API over the endpoint store. pub should produce
// through a client made with producer.ClientOpts(s.backendTimeout), so that
// the publish timeout bounds every answer (see producer.ErrOutcomeUnknown
// for the one case a 503 may still have been accepted).
func newAPI(d *roleDeps, pub api.Publisher, s apiSettings) *api.Server {
	rd := deliverylog.NewReader(d.kafkaOpts()...)
	index := deliverylog.NewIndex(d.rdb, s.logRetention, deliverylog.WithRecords(rd, d.topics().Attempts))
	var more []api.Option
	if s.portal != nil {
		more = append(more, api.WithPortal(s.portal, s.portalURL))
	}
	if s.jobs != nil {
		more = append(more, api.WithJobs(s.jobs, index))
	}
	return api.New(append([]api.Option{
		api.WithTokens(s.tokens),
		api.WithCatalog(d.catalog),
		api.WithPublisher(pub),
		api.WithBackendTimeout(s.backendTimeout),
		api.WithEndpoints(d.store),
		api.WithDeliveryLog(index),
		api.WithEventReader(rd),
		api.WithLogger(d.log),
		api.WithTracerProvider(d.tel.Tracer),
		api.WithPropagator(d.tel.Propagator),
		api.WithBrand(s.brand),
	}, more...)...)
}

// apiRoutes mounts srv's routes on an ops server.
func apiRoutes(srv *api.Server) []ops.Option {
	var opts []ops.Option
	for pattern, h := range srv.Routes() {
		opts = append(opts, ops.WithHandler(pattern, h))
	}
	return opts
}

// fanoutSettings are the fanout role's flag values.
type fanoutSettings struct {
	txnID      string // "" means fanout.TransactionalID()
	window     time.Duration
	txnTimeout time.Duration
	group      groupFlags
	maxBatch   int
	linger     time.Duration
	watch      *groupwatch.Watch // its group's readiness check uses it; nil: a watch of its own
}

func defaultFanoutSettings() fanoutSettings {
	return fanoutSettings{
		window:     fanout.DefaultDedupeWindow,
		txnTimeout: fanout.DefaultTransactionTimeout,
		group:      groupFlags{session: defaultSessionTimeout, rebalance: defaultRebalanceTimeout},
		maxBatch:   fanout.DefaultMaxBatch,
		linger:     fanout.DefaultLinger,
	}
}

// newFanout builds the fanout worker on a transactional group session of
// its own.
func newFanout(d *roleDeps, s fanoutSettings) (supervisor.Named, error) {
	if s.txnID == "" {
		s.txnID = fanout.TransactionalID()
	}
	topics := d.topics()
	opts := append(fanout.ClientOpts(topics, fanout.Group, s.txnID), kgo.TransactionTimeout(s.txnTimeout))
	fopts := []fanout.Option{
		fanout.WithTopics(topics),
		fanout.WithLogger(d.log),
		fanout.WithDedupe(d.rdb),
		fanout.WithDedupeWindow(s.window),
		fanout.WithMaxBatch(s.maxBatch),
		fanout.WithLinger(s.linger),
		fanout.WithMeterProvider(d.tel.Meter),
	}
	if s.watch == nil {
		s.watch = groupwatch.New(time.Now) // its gauges, without a readiness check
	}
	if err := s.watch.Register(d.tel.Meter.Meter("hookstream/fanout"), "hookstream.fanout", "fanout"); err != nil {
		return supervisor.Named{}, err
	}
	opts = append(opts, s.watch.ClientOpts()...)
	fopts = append(fopts, fanout.WithWatch(s.watch))
	sess, err := kgo.NewGroupTransactSession(d.kafkaOpts(append(opts, s.group.opts()...)...)...)
	if err != nil {
		return supervisor.Named{}, fmt.Errorf("kafka transact session: %w", err)
	}
	if err := d.tel.ObserveConsumerLag(kadm.NewClient(d.kafka), fanout.Group); err != nil {
		sess.Close()
		return supervisor.Named{}, err
	}
	f := fanout.New(sess, d.store, d.catalog, fopts...)
	return supervisor.Named{Name: "fanout", Worker: supervisor.Func(func(ctx context.Context) error {
		// Run ends its transaction before returning; closing here leaves
		// the group within the shutdown grace (a static member only with
		// --leave-on-shutdown), so the partitions move at once instead of
		// after a session timeout.
		defer s.group.leaveGroup(ctx, d.kafka, fanout.Group, d.log)
		defer sess.Close()
		return f.Run(ctx)
	})}, nil
}

// delivererSettings are the deliverer role's flag values.
type delivererSettings struct {
	schedule     deliverer.Schedule
	park         time.Duration
	maxInFlight  int
	tenantShare  int
	unordered    int
	maxBuffered  int
	maxBufferedB int64
	connect      time.Duration
	request      time.Duration
	allowPrivate bool
	signer       *signature.Signer
	disableAfter time.Duration
	drain        time.Duration
	group        groupFlags
}

func defaultDelivererSettings() delivererSettings {
	return delivererSettings{
		schedule:     deliverer.DefaultSchedule,
		park:         deliverer.DefaultParkThreshold,
		maxInFlight:  deliverer.DefaultMaxInFlight,
		unordered:    deliverer.DefaultUnorderedConcurrency,
		maxBuffered:  deliverer.DefaultMaxBuffered,
		maxBufferedB: deliverer.DefaultMaxBufferedBytes,
		connect:      sender.DefaultConnectTimeout,
		request:      sender.DefaultTimeout,
		signer:       signature.NewSigner(),
		disableAfter: deliverer.DefaultDisableAfter,
		drain:        deliverer.DefaultDrainTimeout,
		group:        groupFlags{session: defaultSessionTimeout, rebalance: defaultRebalanceTimeout},
	}
}

// newDeliverer builds the deliverer; it has its own group client and
// publishes endpoint.disabled events through d.kafka.
func newDeliverer(d *roleDeps, s delivererSettings) (*deliverer.Deliverer, error) {
	snd := sender.New(
		sender.WithConnectTimeout(s.connect),
		sender.WithTimeout(s.request),
		sender.WithAllowPrivate(s.allowPrivate),
		sender.WithSigner(s.signer),
		sender.WithTracerProvider(d.tel.Tracer),
		sender.WithPropagator(d.tel.Propagator),
	)
	pub := producer.New(d.kafka, d.catalog, producer.WithTopicPrefix(d.prefix), producer.WithMeterProvider(d.tel.Meter), producer.WithPropagator(d.tel.Propagator))
	if err := d.tel.ObserveConsumerLag(kadm.NewClient(d.kafka), deliverer.Group); err != nil {
		return nil, err
	}
	return deliverer.New(
		d.kafkaOpts(s.group.opts()...),
		d.store, snd,
		deliverer.WithTopics(d.topics()),
		deliverer.WithSchedule(s.schedule),
		deliverer.WithParkThreshold(s.park),
		deliverer.WithMaxInFlight(s.maxInFlight),
		deliverer.WithTenantShare(s.tenantShare),
		deliverer.WithUnorderedConcurrency(s.unordered),
		deliverer.WithMaxBuffered(s.maxBuffered),
		deliverer.WithMaxBufferedBytes(s.maxBufferedB),
		deliverer.WithDisableAfter(s.disableAfter),
		deliverer.WithDrainTimeout(s.drain),
		deliverer.WithPublisher(pub),
		deliverer.WithLogger(d.log),
		deliverer.WithMeterProvider(d.tel.Meter),
	)
}
