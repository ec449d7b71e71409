package cli

import (
	"context"
	"flag"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hookstream/hookstream/deliverer"
	"github.com/hookstream/hookstream/fanout"
	"github.com/hookstream/hookstream/internal/config"
	"github.com/hookstream/hookstream/internal/kafkaacl"
	"github.com/hookstream/hookstream/internal/recovery"
	"github.com/hookstream/hookstream/internal/txnid"
	"github.com/hookstream/hookstream/topic"
)

// aclNames are the resources Hookstream's ACLs name under prefix. The
// transactional id prefixes are those txnid.New gives each role.
func aclNames(prefix string) kafkaacl.Names {
	return kafkaacl.Names{
		Topics:          topic.New(prefix),
		TopicPrefix:     prefix,
		FanoutGroup:     fanout.Group,
		DelivererGroup:  deliverer.Group,
		FanoutTxnPrefix: "hookstream-fanout-",
		APITxnPrefix:    "hookstream-producer-",
		JobsGroup:       recovery.Group,
	}
}

// probeACLs stops a role whose principal lacks one of its ACLs, naming it.
// txnID is the role's transactional id, if it has one of its own.
func (d *roleDeps) probeACLs(ctx context.Context, role, txnID string) error {
	gs, err := kafkaacl.Grants(role, aclNames(d.prefix))
	if err != nil {
		return err
	}
	if txnID == "" && role == "api" {
		txnID = txnid.New("producer") // under the api's prefix, as its batches' ids are
	}
	// A client of its own: franz-go caches what a metadata request
	// answered, and the probe sees topics before they are created.
	cl, err := kgo.NewClient(d.kafkaOpts()...)
	if err != nil {
		return fmt.Errorf("kafka client: %w", err)
	}
	defer cl.Close()
	if err := kafkaacl.Probe(ctx, cl, gs, d.topics(), txnID); err != nil {
		return fmt.Errorf("%w (`hookstream kafka-acls --role %s --principal User:<name>` prints what the %s role needs)", err, role, role)
	}
	return nil
}

// runKafkaACLs prints, or creates, the ACLs a role's principal needs.
func runKafkaACLs(ctx context.Context, env Env, args []string) error {
	fs := flag.NewFlagSet("kafka-acls", flag.ContinueOnError)
	role := fs.String("role", "", "role: "+strings.Join(kafkaacl.Roles, ", ")+" (topics: the administrator running `hookstream topics create`)")
	principal := fs.String("principal", "", "the role's Kafka principal, e.g. User:hookstream-fanout")
	prefix := fs.String("topic-prefix", topic.DefaultPrefix, "prefix of every Kafka topic name")
	apply := fs.Bool("apply", false, "create the ACLs on the cluster (needs Alter on the cluster) instead of printing them")
	brokers := config.StringList{"127.0.0.1:9092"}
	fs.Var(&brokers, "kafka-brokers", "comma-separated Kafka seed brokers (with --apply)")
	var sec kafkaSecFlags
	sec.register(fs)
	if err := parse(fs, env, args); err != nil {
		return err
	}
	if *principal == "" || !strings.Contains(*principal, ":") {
		return fmt.Errorf("%w: --principal is required, as Type:name (User:hookstream-fanout)", ErrUsage)
	}
	gs, err := kafkaacl.Grants(*role, aclNames(*prefix))
	if err != nil {
		return fmt.Errorf("%w: --role: %w", ErrUsage, err)
	}
	if !*apply {
		tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "RESOURCE\tPATTERN\tOPERATIONS\tWHY")
		for _, g := range gs {
			fmt.Fprintln(tw, strings.Join(g.Row(), "\t"))
		}
		_ = tw.Flush()
		fmt.Fprintln(env.Stdout, "\n# the same with Kafka's tools:")
		for _, g := range gs {
			fmt.Fprintln(env.Stdout, g.Command(*principal))
		}
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
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	adm := kadm.NewClient(cl)
	for _, b := range kafkaacl.Builders(gs, *principal) {
		res, err := adm.CreateACLs(ctx, b)
		if err != nil {
			return fmt.Errorf("create acls: %w", err)
		}
		for _, r := range res {
			if r.Err != nil {
				return fmt.Errorf("create acl %s on %v %s: %w", r.Operation, r.Type, r.Name, r.Err)
			}
			fmt.Fprintf(env.Stdout, "allowed %s %s on %s %s (%s)\n", *principal, r.Operation, strings.ToLower(r.Type.String()), r.Name, strings.ToLower(r.Pattern.String()))
		}
	}
	return nil
}
