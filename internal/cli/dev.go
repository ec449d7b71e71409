package cli

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hookstream/hookstream/deliverer"
	"github.com/hookstream/hookstream/envelope"
	"github.com/hookstream/hookstream/internal/api"
	"github.com/hookstream/hookstream/internal/deliverylog"
	"github.com/hookstream/hookstream/internal/demo"
	"github.com/hookstream/hookstream/internal/kafkaserver"
	"github.com/hookstream/hookstream/internal/supervisor"
	"github.com/hookstream/hookstream/producer"
	"github.com/hookstream/hookstream/schemas"
	"github.com/hookstream/hookstream/signature"
	"github.com/hookstream/hookstream/subscription"
	"github.com/hookstream/hookstream/topic"
)

// devTenant is the tenant the dev API token acts for.
const devTenant = "demo"

// runDev runs every role in one process on an embedded Kafka broker (kept
// under --data-dir) and an in-process Redis. Redis holds only the endpoint
// cache, rebuilt from the compacted endpoints topic on every start (the
// product's own recovery path), and fanout's dedupe keys, which a restart
// forgets.
func runDev(ctx context.Context, env Env, args []string) error {
	fs := flag.NewFlagSet("dev", flag.ContinueOnError)
	kafkaAddr := fs.String("kafka-addr", "127.0.0.1:9092", "listen address of the embedded Kafka broker")
	dataDir := fs.String("data-dir", "./.hookstream", "directory keeping Kafka's data (<dir>/kafka) and the API token (<dir>/token) across restarts; \"\" keeps everything in memory")
	httpAddr := fs.String("http-addr", "127.0.0.1:8080", "listen address of the HTTP API, /healthz, /readyz and /metrics")
	fixedToken := fs.String("api-token", "", "API token of tenant \""+devTenant+"\" (default: a random dev_ token, kept in <data-dir>/token)")
	withDemo := fs.Bool("demo", false, "run a receiver that verifies and prints every webhook, subscribe it to every event type, and publish one example event of each type but endpoint.disabled")
	demoAddr := fs.String("demo-addr", demo.DefaultAddr, "listen address of the --demo receiver")
	allowPrivate := fs.Bool("allow-private-destinations", true, "allow endpoint URLs on loopback, private and link-local addresses")
	schedule := fs.String("retry-schedule", defaultRetrySchedule, "delay before each delivery attempt, comma-separated")
	brand := fs.String("signature-brand", signature.DefaultBrand, "<Brand> in the seed scheme's X-<Brand>-Signature headers")
	logFormat := fs.String("log-format", "text", "log format: json or text")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn or error")
	grace := fs.Duration("shutdown-grace", 10*time.Second, "how long in-flight work may finish after Ctrl-C or SIGTERM")
	var pf portalFlags
	pf.register(fs, "signing key of customer portal links and sessions (default: a random key, kept in <data-dir>/portal-key)")
	if err := parse(fs, env, args); err != nil {
		return err
	}
	if err := checkLogFlags(*logFormat, *logLevel); err != nil {
		return err
	}
	switch {
	case *grace <= 0:
		return fmt.Errorf("%w: --shutdown-grace must be positive", ErrUsage)
	case strings.ContainsFunc(*fixedToken, func(r rune) bool { return r <= ' ' || r == 0x7f }):
		return fmt.Errorf("%w: --api-token must not contain spaces or control characters", ErrUsage)
	}
	if err := pf.validate(); err != nil {
		return err
	}
	sched, err := parseSchedule(*schedule)
	if err != nil {
		return err
	}
	signer, err := newSigner(*brand)
	if err != nil {
		return err
	}
	log := newLogger(env.Stderr, *logFormat, *logLevel)
	out := &lockedWriter{w: env.Stdout}

	kopts := []kafkaserver.Option{kafkaserver.WithAddr(*kafkaAddr)}
	if *dataDir != "" {
		if err := os.MkdirAll(*dataDir, 0o700); err != nil {
			return fmt.Errorf("--data-dir: %w", err)
		}
		kopts = append(kopts, kafkaserver.WithDataDir(filepath.Join(*dataDir, "kafka")))
	}
	token, err := devToken(*dataDir, *fixedToken)
	if err != nil {
		return err
	}
	if pf.key, err = devPortalKey(*dataDir, pf.key); err != nil {
		return err
	}
	ks, err := kafkaserver.Start(kopts...)
	if err != nil {
		return fmt.Errorf("%w (is another hookstream dev or Kafka running? see --kafka-addr)", err)
	}
	// Kafka and Redis outlive the roles: they stop only after every role
	// has finished its shutdown (ended transactions, committed offsets).
	defer ks.Close()
	mr := miniredis.NewMiniRedis()
	mr.ClockTTL(true) // TTLs (dedupe window, locks) follow the wall clock, as in Redis
	if err := mr.StartAddr("127.0.0.1:0"); err != nil {
		return fmt.Errorf("embedded redis: %w", err)
	}
	defer mr.Close()

	tel, stopTelemetry, err := setupTelemetry(ctx, env, "hookstream-dev")
	if err != nil {
		return err
	}
	defer stopTelemetry()
	kc, err := kgo.NewClient(kafkaOpts([]string{ks.Addr()}, tel)...)
	if err != nil {
		return fmt.Errorf("kafka client: %w", err)
	}
	defer kc.Close()
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	defer func() { _ = rdb.Close() }()
	catalog, err := schemas.Load()
	if err != nil {
		return err
	}
	d := &roleDeps{
		log:     log,
		prefix:  topic.DefaultPrefix,
		brokers: []string{ks.Addr()},
		kafka:   kc,
		rdb:     rdb,
		catalog: catalog,
		tel:     tel,
	}
	d.store = d.newStore(*allowPrivate, subscription.WithSignatureBrand(*brand))
	if err := d.ensureTopics(ctx, topic.DefaultPartitions); err != nil {
		return err
	}
	// The embedded broker is one: replication factor 1 is what it has.
	if err := d.checkTopics(ctx, topicCheckFlags{allowUnsafe: true, minRetries: deliverer.LongestParking(sched, deliverer.DefaultDisableAfter)}.requirements()); err != nil {
		return err
	}

	sessions, err := pf.build(d)
	if err != nil {
		return err
	}
	settings := apiSettings{tokens: api.Tokens{token: devTenant}, backendTimeout: api.DefaultBackendTimeout,
		portal: sessions, portalURL: pf.publicURL}
	publish, err := kgo.NewClient(d.kafkaOpts(producer.ClientOpts(settings.backendTimeout)...)...)
	if err != nil {
		return fmt.Errorf("kafka client: %w", err)
	}
	defer publish.Close()
	pub := producer.New(publish, catalog, producer.WithTopicPrefix(d.prefix), producer.WithMeterProvider(tel.Meter), producer.WithPropagator(tel.Propagator))
	defer pub.Close()
	jobs, jobsWorker, err := newJobs(d, groupFlags{session: defaultSessionTimeout, rebalance: defaultRebalanceTimeout}, pub, defaultJobRetention)
	if err != nil {
		return err
	}
	settings.jobs = jobs
	server := newAPI(d, pub, settings)
	pages, err := pf.pages(d, sessions, server, jobs, *brand, deliverylog.DefaultRetention)
	if err != nil {
		return err
	}
	srv := d.opsServer(*httpAddr, append(apiRoutes(server), portalRoutes(pages)...)...)
	if err := srv.Listen(); err != nil {
		return fmt.Errorf("%w (see --http-addr)", err)
	}
	fan, err := newFanout(d, defaultFanoutSettings())
	if err != nil {
		return err
	}
	ds := defaultDelivererSettings()
	ds.schedule, ds.signer, ds.allowPrivate = sched, signer, *allowPrivate
	ds.drain = *grace / 2 // in-flight requests get half the grace, the rest is for committing
	del, err := newDeliverer(d, ds)
	if err != nil {
		return err
	}
	var recv *demo.Receiver
	if *withDemo {
		recv = demo.New(out, demoLookup(d.store), demo.WithAddr(*demoAddr), demo.WithBrand(*brand))
		if err := recv.Listen(); err != nil {
			return fmt.Errorf("%w (see --demo-addr)", err)
		}
	}

	workers := []supervisor.Named{
		{Name: "subscriptions", Worker: d.store},
		{Name: "http", Worker: srv},
		fan,
		{Name: "deliverer", Worker: del},
		newIndexer(d, deliverylog.DefaultRetention, sched),
		jobsWorker,
		{Name: "dev", Worker: supervisor.Func(func(ctx context.Context) error {
			// The store waits for its first build from the endpoints topic;
			// once it answers, the API does too.
			if _, _, err := d.store.List(ctx, devTenant, "", 1); err != nil {
				return err
			}
			fmt.Fprintf(out, "hookstream dev ready: api=http://%s token=%s tenant=%s kafka=%s\n", srv.Addr(), token, devTenant, ks.Addr())
			base := pf.publicURL
			if base == "" {
				base = "http://" + srv.Addr()
			}
			link, err := devPortalLink(ctx, sessions, strings.TrimSuffix(base, "/"), devTenant)
			if err != nil {
				return err
			}
			fmt.Fprintf(out, "customer portal for tenant %s (one-time link, valid 24h; `hookstream portal-link` makes more): %s\n", devTenant, link)
			if recv != nil {
				if err := startDemo(ctx, d, recv, out); err != nil {
					return err
				}
			}
			<-ctx.Done()
			return nil
		})},
	}
	if recv != nil {
		workers = append(workers, supervisor.Named{Name: "demo receiver", Worker: recv})
	}
	log.Info("hookstream dev starting", "kafka", ks.Addr(), "redis", mr.Addr(), "http_addr", srv.Addr(),
		"data_dir", *dataDir, "retry_schedule", sched.String())
	return supervisor.Run(ctx, log, *grace, workers...)
}

// devToken returns the fixed token, else the one kept in dataDir, else a new
// one (kept in dataDir unless it is "").
func devToken(dataDir, fixed string) (string, error) {
	if fixed != "" {
		return fixed, nil
	}
	path := filepath.Join(dataDir, "token")
	if dataDir != "" {
		b, err := os.ReadFile(path)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("dev token: %w", err)
		}
		if t := strings.TrimSpace(string(b)); strings.HasPrefix(t, "dev_") && !strings.ContainsFunc(t, func(r rune) bool { return r <= ' ' }) {
			return t, nil
		}
	}
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("dev token: %w", err)
	}
	t := "dev_" + hex.EncodeToString(b[:])
	if dataDir != "" {
		if err := os.WriteFile(path, []byte(t+"\n"), 0o600); err != nil {
			return "", fmt.Errorf("dev token: %w", err)
		}
	}
	return t, nil
}

// startDemo points an endpoint of the dev tenant, subscribed to every event
// type, at the receiver (reusing the one an earlier start created) and
// publishes the demo's example events (demoEvents) through the producer.
func startDemo(ctx context.Context, d *roleDeps, recv *demo.Receiver, out io.Writer) error {
	ep, how, err := demoEndpoint(ctx, d.store, recv.URL())
	if err != nil {
		return fmt.Errorf("demo endpoint: %w", err)
	}
	events, err := demoEvents(d.catalog)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "demo: receiver %s, endpoint %s (%s), publishing %d example events\n", recv.URL(), ep.ID, how, len(events))
	pub := producer.New(d.kafka, d.catalog, producer.WithTopicPrefix(d.prefix), producer.WithMeterProvider(d.tel.Meter))
	defer pub.Close()
	if _, err := pub.PublishBatch(ctx, devTenant, events); err != nil {
		return fmt.Errorf("demo events: %w", err)
	}
	return nil
}

// demoEndpoint finds the dev tenant's endpoint with URL u, enabling it if it
// was disabled, or creates one subscribed to everything.
func demoEndpoint(ctx context.Context, store *subscription.Store, u string) (ep *subscription.Endpoint, how string, err error) {
	eps, err := listAll(ctx, store, devTenant)
	if err != nil {
		return nil, "", err
	}
	for _, e := range eps {
		if e.URL != u {
			continue
		}
		if !e.Disabled {
			return e, "reused", nil
		}
		enabled := false
		e, err = store.Update(ctx, devTenant, e.ID, subscription.Patch{Disabled: &enabled})
		return e, "re-enabled", err
	}
	ep, err = store.Create(ctx, devTenant, subscription.EndpointInput{
		URL:         u,
		Events:      []string{"*"},
		Description: "hookstream dev --demo receiver",
	})
	return ep, "created", err
}

// demoEvents are the catalog's examples, one per type, with fresh ids, but
// for endpoint.disabled: a newcomer seeing "endpoint disabled" arrive would
// think something broke. The deliverer still sends the real one.
func demoEvents(catalog *schemas.Catalog) ([]producer.Event, error) {
	types := catalog.Types()
	events := make([]producer.Event, 0, len(types))
	for _, t := range types {
		if t.Name == deliverer.EventDisabled {
			continue
		}
		e, err := envelope.Decode(t.Envelope, 0)
		if err != nil {
			return nil, fmt.Errorf("example of %s: %w", t.Name, err)
		}
		events = append(events, producer.Event{Type: t.Name, Data: e.Data})
	}
	return events, nil
}

// demoLookup finds the dev tenant's endpoints that deliver to a URL, for the
// demo receiver.
func demoLookup(store *subscription.Store) demo.Endpoints {
	return func(ctx context.Context, u string) ([]demo.Endpoint, error) {
		eps, err := listAll(ctx, store, devTenant)
		if err != nil {
			return nil, err
		}
		now := time.Now()
		var out []demo.Endpoint
		for _, e := range eps {
			if sameURL(e.URL, u) {
				out = append(out, demo.Endpoint{ID: e.ID, Secrets: e.ActiveSecrets(now)})
			}
		}
		return out, nil
	}
}

func listAll(ctx context.Context, store *subscription.Store, tenant string) ([]*subscription.Endpoint, error) {
	var all []*subscription.Endpoint
	cursor := ""
	for {
		page, next, err := store.List(ctx, tenant, cursor, api.MaxPageSize)
		if err != nil {
			return nil, err
		}
		all = append(all, page...)
		if next == "" {
			return all, nil
		}
		cursor = next
	}
}

// sameURL compares an endpoint URL with the URL a request arrived on, where
// "http://h:p" and "http://h:p/" are one URL.
func sameURL(a, b string) bool {
	ua, err1 := url.Parse(a)
	ub, err2 := url.Parse(b)
	if err1 != nil || err2 != nil {
		return a == b
	}
	path := func(u *url.URL) string {
		if u.EscapedPath() == "" {
			return "/"
		}
		return u.EscapedPath()
	}
	return strings.EqualFold(ua.Scheme, ub.Scheme) && strings.EqualFold(ua.Host, ub.Host) &&
		path(ua) == path(ub) && ua.RawQuery == ub.RawQuery
}

// lockedWriter keeps lines written from several goroutines whole.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
