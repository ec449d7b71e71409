// Package cli implements the hookstream command: one subcommand per role or
// tool. cmd/hookstream only wires signals and exit codes to Main.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hookstream/hookstream/internal/config"
	"github.com/hookstream/hookstream/internal/supervisor"
	"github.com/hookstream/hookstream/internal/telemetry"
	"github.com/hookstream/hookstream/subscription"
	"github.com/hookstream/hookstream/topic"
)

// Env is what a command may touch of its process.
type Env struct {
	Stdin     io.Reader
	Stdout    io.Writer
	Stderr    io.Writer
	LookupEnv func(string) (string, bool)
}

// ErrUsage marks an error in how the command was called (exit code 2).
var ErrUsage = errors.New("usage")

type command struct {
	name    string
	summary string
	run     func(ctx context.Context, env Env, args []string) error
}

func commands() []command {
	return []command{
		{"dev", "all roles in one process on embedded Kafka and Redis", runDev},
		{"api", "HTTP ingest and endpoint management", runAPI},
		{"fanout", "events -> per-endpoint delivery records", runFanout},
		{"deliverer", "delivery records -> signed POSTs, with retries", runDeliverer},
		{"indexer", "attempts topic -> the delivery log's index in Redis", runIndexer},
		{"attempts", "list delivery attempts from the delivery log", runAttempts},
		{"events", "an event's deliveries from the delivery log", runEvents},
		{"kafka", "the embedded Kafka broker alone", runKafka},
		{"topics", "plan, create or check the Kafka topics (partitions, replication, retention)", runTopics},
		{"kafka-acls", "print or apply the Kafka ACLs a role needs", runKafkaACLs},
		{"publish", "publish one event", runPublish},
		{"endpoints", "create, list, get, update, delete, rotate-secret endpoints", runEndpoints},
		{"jobs", "list, get (--wait: follow), cancel recovery jobs (resend, recover, replay)", runJobs},
		{"verify", "verify a received webhook against a secret", runVerify},
		{"schemas", "import an OpenAPI 3.1 document's webhooks as catalog schema files", runSchemas},
		{"portal-link", "print a one-time customer portal link for a tenant (or --revoke its sessions)", runPortalLink},
		{"docs", "print the AsyncAPI document, or write the events page and both specs (--out)", runDocs},
		{"healthcheck", "exit 0 when a URL answers 2xx (container healthchecks)", runHealthcheck},
	}
}

// Main runs the command named by args[0] and returns the process exit code.
func Main(ctx context.Context, args []string, env Env) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(env.Stderr)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	for _, c := range commands() {
		if c.name != args[0] {
			continue
		}
		err := c.run(ctx, env, args[1:])
		switch {
		case err == nil, errors.Is(err, flag.ErrHelp):
			return 0
		case errors.Is(err, ErrUsage):
			fmt.Fprintf(env.Stderr, "hookstream %s: %v\n", c.name, err)
			return 2
		default:
			fmt.Fprintf(env.Stderr, "hookstream %s: %v\n", c.name, err)
			return 1
		}
	}
	fmt.Fprintf(env.Stderr, "hookstream: unknown command %q\n\n", args[0])
	usage(env.Stderr)
	return 2
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "Usage: hookstream <command> [flags]\n\nCommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-12s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nRun 'hookstream <command> --help' for its flags; every flag --x-y can also be set as HOOKSTREAM_X_Y.")
}

// parse parses fs from args and the environment; a usage error wraps ErrUsage.
func parse(fs *flag.FlagSet, env Env, args []string) error {
	fs.SetOutput(env.Stderr)
	err := config.Parse(fs, args, env.LookupEnv)
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		return fmt.Errorf("%w: %w", ErrUsage, err)
	}
	if err == nil && fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected argument %q", ErrUsage, fs.Arg(0))
	}
	return err
}

// common holds the flags every long-running role shares.
type common struct {
	brokers   config.StringList
	redis     redisFlags
	prefix    string
	httpAddr  string
	logFormat string
	logLevel  string
	grace     time.Duration
	storeOpts []subscription.Option // set by the roles that write endpoints
	kafkaSec  kafkaSecFlags
	topicChk  topicCheckFlags
	txnID     string // the role's transactional id, for the ACL probe
}

func (c *common) register(fs *flag.FlagSet, defaultHTTP string) {
	c.brokers = config.StringList{"127.0.0.1:9092"}
	fs.Var(&c.brokers, "kafka-brokers", "comma-separated Kafka seed brokers")
	c.redis.register(fs)
	fs.StringVar(&c.prefix, "topic-prefix", topic.DefaultPrefix, "prefix of every Kafka topic name")
	fs.StringVar(&c.httpAddr, "http-addr", defaultHTTP, "listen address for health, readiness and metrics (and the API)")
	fs.StringVar(&c.logFormat, "log-format", "json", "log format: json or text")
	fs.StringVar(&c.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	fs.DurationVar(&c.grace, "shutdown-grace", 25*time.Second, "how long in-flight work may finish after SIGTERM")
	c.kafkaSec.register(fs)
	c.topicChk.register(fs)
}

func (c *common) validate() error {
	if len(c.brokers) == 0 {
		return fmt.Errorf("%w: --kafka-brokers is empty", ErrUsage)
	}
	if err := c.redis.validate(); err != nil {
		return err
	}
	return checkLogFlags(c.logFormat, c.logLevel)
}

// checkLogFlags validates --log-format and --log-level.
func checkLogFlags(format, level string) error {
	var l slog.Level
	switch {
	case format != "json" && format != "text":
		return fmt.Errorf("%w: --log-format must be json or text, not %q", ErrUsage, format)
	case l.UnmarshalText([]byte(level)) != nil:
		return fmt.Errorf("%w: --log-level must be debug, info, warn or error, not %q", ErrUsage, level)
	}
	return nil
}

func (c *common) logger(env Env) *slog.Logger {
	return newLogger(env.Stderr, c.logFormat, c.logLevel)
}

func newLogger(w io.Writer, format, level string) *slog.Logger {
	var l slog.Level
	_ = l.UnmarshalText([]byte(level))
	opts := &slog.HandlerOptions{Level: l}
	if strings.EqualFold(format, "text") {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

// kafkaOpts are the client options every role's clients start from.
func (c *common) kafkaOpts(tel *telemetry.Telemetry, extra ...kgo.Opt) []kgo.Opt {
	return kafkaOpts(c.brokers, tel, extra...)
}

// kafkaOpts are the options of every Kafka client a role builds: the seed
// brokers and the process's tracing hooks, so that each record produced
// carries its span's traceparent and each record fetched continues its
// trace.
func kafkaOpts(brokers []string, tel *telemetry.Telemetry, extra ...kgo.Opt) []kgo.Opt {
	return append([]kgo.Opt{kgo.SeedBrokers(brokers...), tel.KafkaHooks()}, extra...)
}

// setupTelemetry builds the role's telemetry from the OTEL_* environment
// and installs it as OpenTelemetry's globals. stop flushes spans not yet
// exported, waiting at most telemetryFlush.
func setupTelemetry(ctx context.Context, env Env, service string) (tel *telemetry.Telemetry, stop func(), err error) {
	getenv := func(k string) string {
		if env.LookupEnv == nil {
			return ""
		}
		v, _ := env.LookupEnv(k)
		return v
	}
	tel, err = telemetry.Setup(ctx, service, telemetry.WithGlobal(), telemetry.WithGetenv(getenv))
	if err != nil {
		return nil, nil, err
	}
	return tel, func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), telemetryFlush)
		defer cancel()
		_ = tel.Shutdown(sctx)
	}, nil
}

// telemetryFlush bounds the span flush on exit: an unreachable collector
// must not hold up a stopping role.
const telemetryFlush = 5 * time.Second

func (c *common) redisClient() (redis.UniversalClient, error) { return c.redis.client() }

// serve runs workers under one supervisor with the configured grace.
func (c *common) serve(ctx context.Context, log *slog.Logger, workers ...supervisor.Named) error {
	return supervisor.Run(ctx, log, c.grace, workers...)
}

// Defaults of the consumer group flags.
const (
	defaultSessionTimeout   = 45 * time.Second
	defaultRebalanceTimeout = time.Minute
)

// groupFlags are the consumer group flags of the roles that consume in a
// group (fanout, deliverer).
type groupFlags struct {
	session   time.Duration
	rebalance time.Duration
	instance  string
	leave     bool
}

func (g *groupFlags) register(fs *flag.FlagSet) {
	fs.DurationVar(&g.session, "session-timeout", defaultSessionTimeout, "consumer group session timeout: how soon a dead member's partitions move")
	fs.DurationVar(&g.rebalance, "rebalance-timeout", defaultRebalanceTimeout, "consumer group rebalance timeout")
	fs.StringVar(&g.instance, "instance-id", "", "static group membership: a name unique in the group and kept across restarts (the pod name); a restart within the session timeout then keeps its partitions without a rebalance")
	fs.BoolVar(&g.leave, "leave-on-shutdown", false, "with --instance-id: leave the group on SIGTERM, so the partitions move at once, for replicas whose names do not survive a restart (Deployment pods); a crash still keeps them for the restart")
}

func (g groupFlags) validate() error {
	switch {
	case g.session <= 0:
		return fmt.Errorf("%w: --session-timeout must be positive", ErrUsage)
	case g.rebalance <= 0:
		return fmt.Errorf("%w: --rebalance-timeout must be positive", ErrUsage)
	}
	return nil
}

// opts are the group client's timeouts. Heartbeats go at a third of the
// session timeout, and at least every 3s (franz-go's default).
func (g groupFlags) opts() []kgo.Opt {
	opts := []kgo.Opt{
		kgo.SessionTimeout(g.session),
		kgo.HeartbeatInterval(min(3*time.Second, g.session/3)),
		kgo.RebalanceTimeout(g.rebalance),
	}
	if g.instance != "" {
		opts = append(opts, kgo.InstanceID(g.instance))
	}
	return opts
}

// partitionFlags are the --partitions-* flags: the partition counts of the
// topics a role creates when they are missing (-1: the broker's default).
type partitionFlags struct {
	events     int
	deliveries int
}

// register adds --partitions-deliveries, and --partitions-events for a role
// that creates the events topic.
func (p *partitionFlags) register(fs *flag.FlagSet, events bool) {
	p.events = -1
	if events {
		fs.IntVar(&p.events, "partitions-events", -1, "partitions of the events topic when creating it (-1: broker default)")
	}
	fs.IntVar(&p.deliveries, "partitions-deliveries", -1, "partitions of the deliveries and retries topics when creating them (-1: broker default)")
}

func (p partitionFlags) validate() error {
	for _, f := range []struct {
		name string
		n    int
	}{{"--partitions-events", p.events}, {"--partitions-deliveries", p.deliveries}} {
		if f.n == 0 || f.n < -1 {
			return fmt.Errorf("%w: %s must be -1 or at least 1", ErrUsage, f.name)
		}
	}
	return nil
}

func (p partitionFlags) topics() topic.Partitions {
	return topic.Partitions{Events: int32(p.events), Deliveries: int32(p.deliveries), Other: -1}
}
