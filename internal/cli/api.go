package cli

import (
	"context"
	"flag"
	"fmt"
	"time"

	"github.com/hookstream/hookstream/envelope"
	"github.com/hookstream/hookstream/internal/api"
	"github.com/hookstream/hookstream/internal/deliverylog"
	"github.com/hookstream/hookstream/internal/ops"
	"github.com/hookstream/hookstream/internal/supervisor"
	"github.com/hookstream/hookstream/producer"
	"github.com/hookstream/hookstream/signature"
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
	logRetention := fs.Duration("log-retention", deliverylog.DefaultRetention, "the delivery log's window, as the indexer keeps it (lists say which window they covered)")
	backendTimeout := fs.Duration("backend-timeout", api.DefaultBackendTimeout, "how long POST /v1/events waits for Kafka, and an endpoint request for Kafka and Redis, before answering 503")
	readTimeout := fs.Duration("http-read-timeout", ops.DefaultLimits.ReadTimeout, "longest a client may take to send one whole request, body included")
	idleTimeout := fs.Duration("http-idle-timeout", ops.DefaultLimits.IdleTimeout, "how long an unused keep-alive connection stays open")
	maxConns := fs.Int("http-max-conns", ops.DefaultLimits.MaxConns, "most connections open at once; more wait to be accepted")
	var parts partitionFlags
	parts.register(fs, true)
	brand := fs.String("signature-brand", signature.DefaultBrand, "<Brand> the deliverers sign with, whose X-<Brand>-* headers endpoints may not set; it also brands /docs/events and /v1/asyncapi.json")
	maxEndpoints := fs.Int("max-endpoints-per-tenant", subscription.DefaultMaxEndpoints, "most endpoints one tenant may have")
	allowPrivate := fs.Bool("allow-private-destinations", false, "allow endpoint URLs on loopback, private and link-local addresses")
	// The jobs group (package recovery) decides which api process runs
	// the recovery jobs.
	var group groupFlags
	group.register(fs)
	jobRetention := fs.Duration("job-retention", defaultJobRetention, "how long a finished recovery job (done, failed, canceled) stays listed before it is removed from the jobs topic")
	var pf portalFlags
	pf.register(fs, "signing key of customer portal links and sessions, at least 16 bytes (keep it secret; changing it ends every session); empty: no portal")
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
	case *backendTimeout < time.Second:
		return fmt.Errorf("%w: --backend-timeout must be at least 1s", ErrUsage)
	case *readTimeout < time.Second || *idleTimeout < time.Second:
		return fmt.Errorf("%w: --http-read-timeout and --http-idle-timeout must be at least 1s", ErrUsage)
	case *maxConns < 1:
		return fmt.Errorf("%w: --http-max-conns must be at least 1", ErrUsage)
	}
	if err := group.validate(); err != nil {
		return err
	}
	if err := parts.validate(); err != nil {
		return err
	}
	if _, err := newSigner(*brand); err != nil {
		return err
	}
	if err := pf.validate(); err != nil {
		return err
	}
	if *maxEndpoints < 1 {
		return fmt.Errorf("%w: --max-endpoints-per-tenant must be at least 1", ErrUsage)
	}
	c.storeOpts = []subscription.Option{subscription.WithSignatureBrand(*brand), subscription.WithMaxEndpoints(*maxEndpoints)}
	log := c.logger(env)
	if len(tokens) == 0 {
		log.Warn("no --api-tokens: every API request will be answered 401")
	}

	// The client's delivery timeout matches the API's: a batch answered
	// with 503 is never committed later, and a single event only when its
	// outcome was unknown (the 503 says so).
	d, closeDeps, err := c.deps(ctx, env, log, "hookstream-api", parts.topics(), *allowPrivate, producer.ClientOpts(*backendTimeout)...)
	if err != nil {
		return err
	}
	defer closeDeps()
	p := producer.New(d.kafka, d.catalog,
		producer.WithTopicPrefix(c.prefix),
		producer.WithMaxSize(*maxEventSize),
		producer.WithMeterProvider(d.tel.Meter),
		producer.WithPropagator(d.tel.Propagator),
	)
	defer p.Close()
	if *jobRetention <= 0 {
		return fmt.Errorf("%w: --job-retention must be positive", ErrUsage)
	}
	jobs, jobsWorker, err := newJobs(d, group, p, *jobRetention)
	if err != nil {
		return err
	}
	sessions, err := pf.build(d)
	if err != nil {
		return err
	}
	server := newAPI(d, p, apiSettings{tokens: tokens, backendTimeout: *backendTimeout, brand: *brand, logRetention: *logRetention,
		portal: sessions, portalURL: pf.publicURL, jobs: jobs})
	pages, err := pf.pages(d, sessions, server, jobs, *brand, *logRetention)
	if err != nil {
		return err
	}
	// A request may take its read timeout to arrive and the backend
	// timeout to be answered.
	limits := ops.WithLimits(ops.Limits{ReadTimeout: *readTimeout, WriteTimeout: *readTimeout + *backendTimeout + 10*time.Second,
		IdleTimeout: *idleTimeout, MaxConns: *maxConns})
	srv := d.opsServer(c.httpAddr, append(append(apiRoutes(server), portalRoutes(pages)...), limits, ops.WithTerseReadiness())...)
	if err := srv.Listen(); err != nil {
		return err
	}
	log.Info("api starting", "http_addr", srv.Addr(), "events", d.topics().Events, "tokens", len(tokens))
	return c.serve(ctx, log, supervisor.Named{Name: "http", Worker: srv}, supervisor.Named{Name: "endpoints", Worker: d.store}, jobsWorker)
}
