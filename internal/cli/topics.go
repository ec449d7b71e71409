package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hookstream/hookstream/deliverer"
	"github.com/hookstream/hookstream/internal/config"
	"github.com/hookstream/hookstream/topic"
)

// topicCheckFlags are the flags of the topic check every role runs at
// start.
type topicCheckFlags struct {
	allowUnsafe bool
	// minRetries is the longest parking; the deliverer sets it from its
	// schedule, the other roles assume the defaults.
	minRetries time.Duration
}

func (f *topicCheckFlags) register(fs *flag.FlagSet) {
	fs.BoolVar(&f.allowUnsafe, "allow-unsafe-topics", false, "run on topics with replication factor 1 (a single-broker development cluster); every other unsafe topic setting still stops the role")
}

func (f topicCheckFlags) requirements() topic.Requirements {
	r := topic.Requirements{MinRetriesRetention: f.minRetries, AllowUnsafe: f.allowUnsafe}
	if r.MinRetriesRetention == 0 {
		r.MinRetriesRetention = deliverer.LongestParking(deliverer.DefaultSchedule, deliverer.DefaultDisableAfter)
	}
	return r
}

// checkTopics refuses topics that can lose data, naming the topic, the
// setting and the fix, and logs the warnings.
func (d *roleDeps) checkTopics(ctx context.Context, r topic.Requirements) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	ps, err := topic.Check(ctx, kadm.NewClient(d.kafka), d.topics(), r)
	if err != nil {
		return fmt.Errorf("checking the topics: %w", err)
	}
	for _, p := range ps {
		if p.Warning {
			d.log.Warn("topic setting", "topic", p.Topic, "setting", p.Setting, "found", p.Found, "fix", p.Fix)
		}
	}
	return topic.Unsafe(ps)
}

const topicsUsage = `Usage: hookstream topics plan|create|check [flags]

  plan     print every topic's partitions, replication factor and configs, and
           the kafka-topics.sh commands that create them (no Kafka needed)
  create   create the topics that are missing as planned, then check them all
  check    check the existing topics; exit 1 when a setting can lose data

Run 'hookstream topics plan --help' for the flags.
`

// runTopics plans, creates or checks Hookstream's topics, as the
// administrator who owns the cluster's topics would.
func runTopics(ctx context.Context, env Env, args []string) error {
	if len(args) == 0 || (args[0] != "plan" && args[0] != "create" && args[0] != "check") {
		fmt.Fprint(env.Stderr, topicsUsage)
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
			return flag.ErrHelp
		}
		return fmt.Errorf("%w: want `topics plan`, `topics create` or `topics check`", ErrUsage)
	}
	sub := args[0]
	fs := flag.NewFlagSet("topics "+sub, flag.ContinueOnError)
	brokers := config.StringList{"127.0.0.1:9092"}
	fs.Var(&brokers, "kafka-brokers", "comma-separated Kafka seed brokers")
	prefix := fs.String("topic-prefix", topic.DefaultPrefix, "prefix of every Kafka topic name")
	var sec kafkaSecFlags
	sec.register(fs)
	pEvents := fs.Int("partitions-events", 12, "partitions of the events topic: the most fanout replicas")
	pDeliveries := fs.Int("partitions-deliveries", 12, "partitions of the deliveries and retries topics: the most deliverer replicas")
	pOther := fs.Int("partitions-other", 3, "partitions of the endpoints, attempts and dead topics")
	rf := fs.Int("replication-factor", 3, "replicas of every partition")
	minISR := fs.Int("min-insync-replicas", 2, "min.insync.replicas of every topic (0: the broker's default)")
	ret := topic.DefaultRetention
	fs.DurationVar(&ret.Events, "retention-events", ret.Events, "retention of the events topic: the replay window")
	fs.DurationVar(&ret.Deliveries, "retention-deliveries", ret.Deliveries, "retention of the deliveries topic")
	fs.DurationVar(&ret.Retries, "retention-retries", ret.Retries, "retention of the retries topic: longer than the longest parking")
	fs.DurationVar(&ret.Attempts, "retention-attempts", ret.Attempts, "retention of the attempts topic: the delivery log's history")
	fs.DurationVar(&ret.Dead, "retention-dead", ret.Dead, "retention of the dead-letter topic")
	var chk topicCheckFlags
	chk.register(fs)
	fs.DurationVar(&chk.minRetries, "longest-parking", chk.requirements().MinRetriesRetention, "the deliverers' longest parking (their --retry-schedule and --disable-after); the retries retention must be longer")
	if err := parse(fs, env, args[1:]); err != nil {
		return err
	}
	switch {
	case *pEvents < 1 || *pDeliveries < 1 || *pOther < 1:
		return fmt.Errorf("%w: --partitions-* must be at least 1", ErrUsage)
	case *rf < 1 || *rf > 32767:
		return fmt.Errorf("%w: --replication-factor must be at least 1", ErrUsage)
	case *minISR < 0 || *minISR > *rf:
		return fmt.Errorf("%w: --min-insync-replicas must be between 0 and --replication-factor", ErrUsage)
	case ret.Retries > 0 && ret.Retries < chk.minRetries:
		return fmt.Errorf("%w: --retention-retries %v is shorter than --longest-parking %v: parked deliveries would be deleted", ErrUsage, ret.Retries, chk.minRetries)
	}
	for _, r := range []time.Duration{ret.Events, ret.Deliveries, ret.Retries, ret.Attempts, ret.Dead} {
		if r < 0 {
			return fmt.Errorf("%w: --retention-* must be positive", ErrUsage)
		}
	}
	names := topic.New(*prefix)
	specs := topic.Plan(names, topic.Settings{
		Partitions:        topic.Partitions{Events: int32(*pEvents), Deliveries: int32(*pDeliveries), Other: int32(*pOther)},
		ReplicationFactor: int16(*rf),
		MinInsyncReplicas: *minISR,
		Retention:         ret,
	})
	if sub == "plan" {
		printPlan(env.Stdout, specs)
		return nil
	}
	secOpts, err := sec.opts(env)
	if err != nil {
		return err
	}
	cl, err := kgo.NewClient(append(secOpts, kgo.SeedBrokers(brokers...))...)
	if err != nil {
		return fmt.Errorf("kafka client: %w", err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if sub == "create" {
		created, err := topic.Create(ctx, adm, specs)
		for _, n := range created {
			fmt.Fprintf(env.Stdout, "created %s\n", n)
		}
		if err != nil {
			return err
		}
	}
	ps, err := topic.Check(ctx, adm, names, chk.requirements())
	if err != nil {
		return err
	}
	for _, p := range ps {
		if p.Warning {
			fmt.Fprintf(env.Stdout, "warning: %s\n", p)
		}
	}
	if err := topic.Unsafe(ps); err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "topics ok: %s\n", strings.Join(names.All(), ", "))
	return nil
}

func printPlan(w io.Writer, specs []topic.Spec) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TOPIC\tPARTITIONS\tREPLICATION\tCONFIGS")
	for _, s := range specs {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\n", s.Name, s.Partitions, s.ReplicationFactor, configList(s.Configs, ","))
	}
	_ = tw.Flush()
	fmt.Fprintln(w, "\n# the same with Kafka's tools:")
	for _, s := range specs {
		fmt.Fprintf(w, "kafka-topics.sh --bootstrap-server <brokers> --create --topic %s --partitions %d --replication-factor %d%s\n",
			s.Name, s.Partitions, s.ReplicationFactor, " --config "+configList(s.Configs, " --config "))
	}
}

func configList(c map[string]string, sep string) string {
	var kv []string
	for k, v := range c {
		kv = append(kv, k+"="+v)
	}
	sort.Strings(kv)
	return strings.Join(kv, sep)
}
