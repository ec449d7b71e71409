package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"time"

	"github.com/hookstream/hookstream/deliverer"
	"github.com/hookstream/hookstream/internal/ops"
	"github.com/hookstream/hookstream/internal/supervisor"
	"github.com/hookstream/hookstream/sender"
	"github.com/hookstream/hookstream/signature"
)

func runDeliverer(ctx context.Context, env Env, args []string) error {
	fs := flag.NewFlagSet("deliverer", flag.ContinueOnError)
	var c common
	c.register(fs, ":9090")
	schedule := fs.String("retry-schedule", defaultRetrySchedule, "delay before each attempt, comma-separated; its length is the number of attempts before dead-lettering")
	park := fs.Duration("park-threshold", deliverer.DefaultParkThreshold, "longer retry delays move the endpoint's records to the retries topic instead of waiting in memory")
	maxInFlight := fs.Int("max-in-flight", deliverer.DefaultMaxInFlight, "most requests in flight across all endpoints")
	tenantShare := fs.Int("tenant-share", 0, "in-flight requests one tenant may hold while others could need them (0: an eighth of --max-in-flight); beyond it a tenant takes slots only while half of --max-in-flight stays free")
	unordered := fs.Int("unordered-concurrency", deliverer.DefaultUnorderedConcurrency, "most requests in flight to one endpoint with ordering \"none\"")
	maxBuffered := fs.Int("max-buffered", deliverer.DefaultMaxBuffered, "unfinished records held in memory per deliveries partition before fetching it pauses; a lane in backoff with a tenth of that queued parks in retries")
	maxBufferedBytes := fs.Int64("max-buffered-bytes", deliverer.DefaultMaxBufferedBytes, "bytes of unfinished records (key, value, headers, 512 bytes overhead each) held in memory per deliveries partition before fetching it pauses; a lane in backoff holding a tenth of that parks in retries")
	connect := fs.Duration("connect-timeout", sender.DefaultConnectTimeout, "TCP connect (and TLS handshake) timeout of a delivery")
	request := fs.Duration("request-timeout", sender.DefaultTimeout, "total timeout of a delivery attempt (an endpoint's own timeout overrides it)")
	allowPrivate := fs.Bool("allow-private-destinations", false, "allow endpoint URLs on loopback, private and link-local addresses (development only)")
	brand := fs.String("signature-brand", signature.DefaultBrand, "<Brand> in the seed scheme's X-<Brand>-Signature headers")
	disableAfter := fs.Duration("disable-after", deliverer.DefaultDisableAfter, "disable an endpoint whose attempts have all failed this long (0: never)")
	drain := fs.Duration("drain-timeout", deliverer.DefaultDrainTimeout, "how long requests in flight may finish on SIGTERM")
	var group groupFlags
	group.register(fs)
	var parts partitionFlags
	parts.register(fs, false)
	if err := parse(fs, env, args); err != nil {
		return err
	}
	if err := c.validate(); err != nil {
		return err
	}
	sched, err := parseSchedule(*schedule)
	if err != nil {
		return err
	}
	c.topicChk.minRetries = deliverer.LongestParking(sched, *disableAfter)
	switch {
	case *park <= 0:
		return fmt.Errorf("%w: --park-threshold must be positive", ErrUsage)
	case *maxInFlight < 1:
		return fmt.Errorf("%w: --max-in-flight must be at least 1", ErrUsage)
	case *tenantShare < 0:
		return fmt.Errorf("%w: --tenant-share must not be negative", ErrUsage)
	case *unordered < 1:
		return fmt.Errorf("%w: --unordered-concurrency must be at least 1", ErrUsage)
	case *maxBuffered < 1:
		return fmt.Errorf("%w: --max-buffered must be at least 1", ErrUsage)
	case *maxBufferedBytes < 1:
		return fmt.Errorf("%w: --max-buffered-bytes must be at least 1", ErrUsage)
	case *connect <= 0:
		return fmt.Errorf("%w: --connect-timeout must be positive", ErrUsage)
	case *request <= 0:
		return fmt.Errorf("%w: --request-timeout must be positive", ErrUsage)
	case *disableAfter < 0:
		return fmt.Errorf("%w: --disable-after must not be negative", ErrUsage)
	case *drain <= 0:
		return fmt.Errorf("%w: --drain-timeout must be positive", ErrUsage)
	case *drain+deliverer.StopTimeout > c.grace:
		return fmt.Errorf("%w: --drain-timeout (%s) must be at least %s shorter than --shutdown-grace (%s): stopping takes that long after the drain",
			ErrUsage, *drain, deliverer.StopTimeout, c.grace)
	}
	if err := group.validate(); err != nil {
		return err
	}
	if err := parts.validate(); err != nil {
		return err
	}
	signer, err := newSigner(*brand)
	if err != nil {
		return err
	}
	log := c.logger(env)

	// A plain client for topic creation, the endpoint store, endpoint.disabled
	// events and readiness; the deliverer builds its own group client.
	d, closeDeps, err := c.deps(ctx, env, log, "hookstream-deliverer", parts.topics(), *allowPrivate)
	if err != nil {
		return err
	}
	defer closeDeps()
	del, err := newDeliverer(d, delivererSettings{
		schedule: sched, park: *park, maxInFlight: *maxInFlight, tenantShare: *tenantShare, unordered: *unordered, maxBuffered: *maxBuffered, maxBufferedB: *maxBufferedBytes,
		connect: *connect, request: *request, allowPrivate: *allowPrivate, signer: signer,
		disableAfter: *disableAfter, drain: *drain, group: group,
	})
	if err != nil {
		return err
	}
	// A rebalance takes up to the session plus the rebalance timeout; a
	// member without partitions for twice that is in a stuck group.
	srv := d.opsServer(c.httpAddr, ops.WithCheck("group", del.AssignmentCheck(2*(group.session+group.rebalance))))
	if err := srv.Listen(); err != nil {
		return err
	}
	topics := d.topics()
	log.Info("deliverer starting", "http_addr", srv.Addr(), "deliveries", topics.Deliveries, "retries", topics.Retries,
		"retry_schedule", sched.String(), "park_threshold", park.String())
	return c.serve(ctx, log,
		supervisor.Named{Name: "subscriptions", Worker: d.store},
		supervisor.Named{Name: "deliverer", Worker: supervisor.Func(func(ctx context.Context) error {
			defer group.leaveGroup(ctx, d.kafka, deliverer.Group, log)
			return del.Run(ctx)
		})},
		supervisor.Named{Name: "ops", Worker: srv},
	)
}

// defaultRetrySchedule is the --retry-schedule default.
const defaultRetrySchedule = "0s,5s,5m,30m,2h,5h,10h,10h"

// parseSchedule parses --retry-schedule.
func parseSchedule(s string) (deliverer.Schedule, error) {
	sched, err := deliverer.ParseSchedule(s)
	if err != nil {
		return nil, fmt.Errorf("%w: --retry-schedule: %w", ErrUsage, err)
	}
	return sched, nil
}

// newSigner is the signer for --signature-brand.
func newSigner(brand string) (*signature.Signer, error) {
	s := signature.NewSigner(signature.WithBrand(brand))
	if err := checkBrand(s); err != nil {
		return nil, fmt.Errorf("%w: --signature-brand: %w", ErrUsage, err)
	}
	return s, nil
}

// checkBrand reports a brand the signer will refuse, at start-up rather
// than on the first seed-scheme delivery.
func checkBrand(s *signature.Signer) error {
	secret, err := signature.NewSecret()
	if err != nil {
		return err
	}
	err = s.Sign(http.Header{}, signature.Seed, []string{secret}, "evt_check", "check", time.Now(), nil)
	if errors.Is(err, signature.ErrInvalidBrand) {
		return err
	}
	return nil
}
