package deliverer

import (
	"log/slog"
	"time"

	"go.opentelemetry.io/otel/metric"

	"github.com/hookstream/hookstream/topic"
)

// Defaults of the options.
const (
	DefaultParkThreshold        = 30 * time.Second
	DefaultMaxInFlight          = 2048
	DefaultUnorderedConcurrency = 10
	DefaultMaxBuffered          = 10000
	DefaultMaxBufferedBytes     = 4 << 20
	DefaultDisableAfter         = 5 * 24 * time.Hour
	DefaultDrainTimeout         = 20 * time.Second
	DefaultCommitInterval       = 500 * time.Millisecond
)

type config struct {
	topics      topic.Names
	group       string
	policy      policy
	maxInFlight int
	tenantShare int
	unordered   int
	maxBuffered int
	// maxBufferedBytes bounds the same by bytes: a count alone let 1 KiB
	// records of 12 partitions take over 300 MiB.
	maxBufferedBytes int64
	drain            time.Duration
	commitEvery      time.Duration
	publisher        EventPublisher
	// recoveredAfter: see WithRecoveredAfter (opevents.go).
	recoveredAfter time.Duration
	log            *slog.Logger
	meter          metric.MeterProvider
}

// Option configures a Deliverer.
type Option func(*config)

// WithTopics sets the topic names (default topic.New(topic.DefaultPrefix)).
func WithTopics(n topic.Names) Option { return func(c *config) { c.topics = n } }

// WithGroup sets the consumer group (default Group).
func WithGroup(g string) Option { return func(c *config) { c.group = g } }

// WithSchedule sets the retry schedule (default DefaultSchedule).
func WithSchedule(s Schedule) Option { return func(c *config) { c.policy.schedule = s } }

// WithParkThreshold sets the longest backoff waited in memory; longer ones
// park the lane in the retries topic (default DefaultParkThreshold).
func WithParkThreshold(d time.Duration) Option { return func(c *config) { c.policy.park = d } }

// WithMaxInFlight bounds the requests in flight across all lanes (default
// DefaultMaxInFlight). A request in flight mostly waits for its receiver,
// at the cost of a goroutine and a pooled connection: with receivers
// answering in 200 ms, as on the internet, 2048 allow about 10,000
// deliveries/s, where 256 capped a process at 1,280.
func WithMaxInFlight(n int) Option { return func(c *config) { c.maxInFlight = n } }

// WithTenantShare sets the in-flight slots one tenant may hold while
// others could need them (default an eighth of WithMaxInFlight): a tenant
// takes more only while half of WithMaxInFlight (at least the share) stays
// free, and freed slots go round-robin to the waiting tenants, those under
// their share first. A deployment with one tenant sets it to
// WithMaxInFlight to use the whole pool.
func WithTenantShare(n int) Option { return func(c *config) { c.tenantShare = n } }

// WithUnorderedConcurrency bounds the requests in flight to one endpoint with
// ordering "none" (default DefaultUnorderedConcurrency).
func WithUnorderedConcurrency(n int) Option { return func(c *config) { c.unordered = n } }

// WithMaxBuffered is how many unfinished records of one deliveries
// partition may be held in memory before its fetching pauses; a lane in
// backoff with a tenth of that queued parks (default DefaultMaxBuffered).
func WithMaxBuffered(n int) Option { return func(c *config) { c.maxBuffered = n } }

// WithMaxBufferedBytes bounds the same records by bytes (key, value,
// headers and a fixed overhead per record): fetching pauses at n bytes, and
// a lane in backoff holding a tenth of n parks (default
// DefaultMaxBufferedBytes, 4 MiB).
func WithMaxBufferedBytes(n int64) Option { return func(c *config) { c.maxBufferedBytes = n } }

// WithDisableAfter disables an endpoint whose attempts have all failed for d
// (default DefaultDisableAfter; 0 never disables).
func WithDisableAfter(d time.Duration) Option { return func(c *config) { c.policy.disableAfter = d } }

// WithDrainTimeout bounds how long requests in flight may finish when Run's
// context ends (default DefaultDrainTimeout).
func WithDrainTimeout(d time.Duration) Option { return func(c *config) { c.drain = d } }

// WithCommitInterval sets how often finished offsets are committed (default
// DefaultCommitInterval).
func WithCommitInterval(d time.Duration) Option { return func(c *config) { c.commitEvery = d } }

// WithPublisher publishes endpoint.disabled when an endpoint is disabled
// (default: none, the endpoint is only disabled).
func WithPublisher(p EventPublisher) Option { return func(c *config) { c.publisher = p } }

// WithLogger sets the logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.log = l } }

// WithMeterProvider sets where metrics go (default otel.GetMeterProvider()).
func WithMeterProvider(mp metric.MeterProvider) Option { return func(c *config) { c.meter = mp } }
