// Package kafkaacl says which Kafka ACLs each Hookstream role needs (and no
// more), builds them for kadm, and probes at a role's start that its
// principal holds them, so that a missing permission stops the role with
// its name instead of hanging a consumer or failing a transaction later.
package kafkaacl

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/hookstream/hookstream/topic"
)

// Resource types of a Grant.
const (
	Topic           = kmsg.ACLResourceTypeTopic
	Group           = kmsg.ACLResourceTypeGroup
	TransactionalID = kmsg.ACLResourceTypeTransactionalId
)

// Grant is one ACL: operations on a resource, literal or prefixed.
type Grant struct {
	Resource kmsg.ACLResourceType
	Name     string
	Prefixed bool
	Ops      []kmsg.ACLOperation
	Why      string
}

// kind is the resource type as kafka-acls.sh spells it: topic, group,
// transactional-id.
func (g Grant) kind() string {
	return strings.ToLower(strings.ReplaceAll(g.Resource.String(), "_", "-"))
}

func (g Grant) resource() string {
	if g.Prefixed {
		return g.kind() + " " + g.Name + "*"
	}
	return g.kind() + " " + g.Name
}

// Names are the resource names the grants are made for.
type Names struct {
	Topics          topic.Names
	TopicPrefix     string
	FanoutGroup     string
	DelivererGroup  string
	FanoutTxnPrefix string // transactional ids "hookstream-fanout-<host>-<random>"
	APITxnPrefix    string // the api's batch publishes and recovery job steps
	JobsGroup       string // the api's recovery jobs group (internal/recovery)
}

// Roles lists the roles Grants knows, the topics administrator last.
var Roles = []string{"api", "fanout", "deliverer", "indexer", "topics"}

// ErrUnknownRole is returned by Grants for a role not in Roles.
var ErrUnknownRole = errors.New("kafkaacl: unknown role")

var (
	read      = []kmsg.ACLOperation{kmsg.ACLOperationRead}
	write     = []kmsg.ACLOperation{kmsg.ACLOperationWrite}
	readWrite = []kmsg.ACLOperation{kmsg.ACLOperationRead, kmsg.ACLOperationWrite}
	describe  = []kmsg.ACLOperation{kmsg.ACLOperationDescribe, kmsg.ACLOperationDescribeConfigs}
)

// Grants returns exactly the ACLs role needs. Read and Write imply
// Describe; writes are idempotent, which Kafka 3.0+ allows with Write on a
// topic (older brokers also want IdempotentWrite on the cluster).
func Grants(role string, n Names) ([]Grant, error) {
	t := n.Topics
	all := Grant{Topic, n.TopicPrefix, true, describe, "the start-up topic check: partitions, replication and configs of every topic"}
	endpoints := Grant{Topic, t.Endpoints, false, read, "the endpoint cache is rebuilt from the endpoints topic"}
	switch role {
	case "api":
		return []Grant{all,
			{Topic, t.Endpoints, false, readWrite, "create, update and delete endpoints; rebuild the endpoint cache"},
			{Topic, t.Events, false, readWrite, "publish events; read an event back for the delivery log and for resend, recover and replay jobs"},
			{Topic, t.Deliveries, false, readWrite, "resend, recover, replay and test events write delivery records; jobs planned by earlier versions read theirs back"},
			{Topic, t.Attempts, false, read, "read an attempt's request headers, response body and error back for the delivery log"},
			{TransactionalID, n.APITxnPrefix, true, write, "batch publishes and recovery job steps are transactions"},
			{Topic, t.Jobs, false, readWrite, "recovery jobs: their state, plans and cancels"},
			{Group, n.JobsGroup, false, read, "the group that picks the api process running the jobs"},
			{Group, n.DelivererGroup, false, []kmsg.ACLOperation{kmsg.ACLOperationDescribe}, "a job waits while the deliverer's committed offsets trail its records"},
		}, nil
	case "fanout":
		return []Grant{all, endpoints,
			{Topic, t.Events, false, read, "consume events"},
			{Group, n.FanoutGroup, false, read, "the consumer group"},
			{Topic, t.Deliveries, false, write, "one delivery record per matched endpoint"},
			{Topic, t.Dead, false, write, "dead-letter undecodable events"},
			{Topic, t.Matches, false, write, "record what each event matched, for the delivery log"},
			{TransactionalID, n.FanoutTxnPrefix, true, write, "consume-transform-produce transactions"},
		}, nil
	case "deliverer":
		return []Grant{all,
			{Topic, t.Endpoints, false, readWrite, "rebuild the endpoint cache; disable an endpoint failing past --disable-after"},
			{Topic, t.Deliveries, false, read, "consume delivery records"},
			{Topic, t.Retries, false, readWrite, "park and read back long retries"},
			{Group, n.DelivererGroup, false, read, "the consumer group"},
			{Topic, t.Attempts, false, write, "record every attempt"},
			{Topic, t.Dead, false, write, "dead-letter exhausted deliveries"},
			{Topic, t.Events, false, write, "publish endpoint.disabled events"},
		}, nil
	case "indexer":
		return []Grant{all, endpoints,
			{Topic, t.Attempts, false, read, "index attempts"},
			{Topic, t.Dead, false, read, "index dead letters"},
			{Topic, t.Matches, false, read, "index every accepted event, matched or not"},
			{Topic, t.Retries, false, read, "index parked deliveries"},
		}, nil
	case "topics":
		return []Grant{
			{Topic, n.TopicPrefix, true, []kmsg.ACLOperation{kmsg.ACLOperationCreate, kmsg.ACLOperationDescribe, kmsg.ACLOperationDescribeConfigs}, "`hookstream topics create` and `check`"},
		}, nil
	}
	return nil, fmt.Errorf("%w %q (want one of %s)", ErrUnknownRole, role, strings.Join(Roles, ", "))
}

// Builders returns one kadm ACL builder per grant, allowing principal
// ("User:name") from any host.
func Builders(gs []Grant, principal string) []*kadm.ACLBuilder {
	var bs []*kadm.ACLBuilder
	for _, g := range gs {
		b := kadm.NewACLs().Allow(principal).AllowHosts("*").Operations(g.Ops...)
		switch g.Resource {
		case Topic:
			b = b.Topics(g.Name)
		case Group:
			b = b.Groups(g.Name)
		default:
			b = b.TransactionalIDs(g.Name)
		}
		pattern := kadm.ACLPatternLiteral
		if g.Prefixed {
			pattern = kadm.ACLPatternPrefixed
		}
		bs = append(bs, b.ResourcePatternType(pattern))
	}
	return bs
}

// Command is the kafka-acls.sh command that creates g for principal.
func (g Grant) Command(principal string) string {
	var res string
	switch g.Resource {
	case Topic:
		res = "--topic " + g.Name
	case Group:
		res = "--group " + g.Name
	default:
		res = "--transactional-id " + g.Name
	}
	pattern := ""
	if g.Prefixed {
		pattern = " --resource-pattern-type prefixed"
	}
	var ops []string
	for _, o := range g.Ops {
		ops = append(ops, "--operation "+opName(o))
	}
	return fmt.Sprintf("kafka-acls.sh --bootstrap-server <brokers> --add --allow-principal %s %s%s %s", principal, res, pattern, strings.Join(ops, " "))
}

// Row is g as a README table row: resource, pattern, operations, why.
func (g Grant) Row() []string {
	pattern := "literal"
	if g.Prefixed {
		pattern = "prefixed"
	}
	var ops []string
	for _, o := range g.Ops {
		ops = append(ops, opName(o))
	}
	return []string{g.resource(), pattern, strings.Join(ops, ", "), g.Why}
}

func opName(o kmsg.ACLOperation) string {
	switch o {
	case kmsg.ACLOperationDescribeConfigs:
		return "DescribeConfigs"
	case kmsg.ACLOperationIdempotentWrite:
		return "IdempotentWrite"
	}
	s := strings.ToLower(o.String())
	return strings.ToUpper(s[:1]) + s[1:]
}

// ErrMissing means the principal lacks permissions a role needs.
var ErrMissing = errors.New("kafka principal lacks permissions")

// Probe checks that the client's principal holds every grant of gs, and
// returns an error wrapping ErrMissing that names each missing one. Topic
// and group permissions are read from the brokers' authorized operations
// (Kafka 2.3+); a transactional id grant is tried with an InitProducerID of
// txnID, as the role's own producer does first thing.
func Probe(ctx context.Context, cl *kgo.Client, gs []Grant, n topic.Names, txnID string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var missing []string
	miss := func(g Grant, op kmsg.ACLOperation, name string) {
		missing = append(missing, fmt.Sprintf("%s on %s %s", opName(op), g.kind(), name))
	}
	topics, groups := map[string][]Grant{}, map[string][]Grant{}
	for _, g := range gs {
		switch g.Resource {
		case Topic:
			topics[g.Name] = append(topics[g.Name], g)
		case Group:
			groups[g.Name] = append(groups[g.Name], g)
		}
	}
	if err := probeTopics(ctx, cl, topics, n.All(), miss); err != nil {
		return err
	}
	if err := probeGroups(ctx, cl, groups, miss); err != nil {
		return err
	}
	for _, g := range gs {
		if g.Resource != TransactionalID {
			continue
		}
		if txnID == "" || (g.Prefixed && !strings.HasPrefix(txnID, g.Name)) {
			continue
		}
		req := kmsg.NewPtrInitProducerIDRequest()
		req.TransactionalID = &txnID
		req.TransactionTimeoutMillis = 60000
		req.ProducerID, req.ProducerEpoch = -1, -1
		// Finding the transaction coordinator already needs Describe,
		// so the refusal may come as the request's error.
		resp, err := req.RequestWith(ctx, cl)
		if err == nil {
			err = kerr.ErrorForCode(resp.ErrorCode)
		}
		switch {
		case errors.Is(err, kerr.TransactionalIDAuthorizationFailed):
			miss(g, kmsg.ACLOperationWrite, txnID)
		case err != nil && !kerr.IsRetriable(err):
			return fmt.Errorf("probe transactional id %s: %w", txnID, err)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w: %s", ErrMissing, strings.Join(missing, "; "))
	}
	return nil
}

// probeTopics checks the topic grants. A prefixed grant is checked on the
// existing topics of names that carry the prefix.
func probeTopics(ctx context.Context, cl *kgo.Client, grants map[string][]Grant, all []string, miss func(Grant, kmsg.ACLOperation, string)) error {
	names := slices.Clone(all)
	for name, gs := range grants {
		if !gs[0].Prefixed && !slices.Contains(names, name) {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	req := kmsg.NewPtrMetadataRequest()
	req.IncludeTopicAuthorizedOperations = true
	for _, n := range names {
		rt := kmsg.NewMetadataRequestTopic()
		rt.Topic = kmsg.StringPtr(n)
		req.Topics = append(req.Topics, rt)
	}
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return fmt.Errorf("probe topic permissions: %w", err)
	}
	byName := map[string]kmsg.MetadataResponseTopic{}
	for _, t := range resp.Topics {
		if t.Topic != nil {
			byName[*t.Topic] = t
		}
	}
	for name, gs := range grants {
		for _, g := range gs {
			targets := []string{name}
			if g.Prefixed {
				targets = names
			}
			for _, tn := range targets {
				if g.Prefixed && !strings.HasPrefix(tn, g.Name) {
					continue
				}
				t, ok := byName[tn]
				terr := kerr.ErrorForCode(t.ErrorCode)
				if !ok || errors.Is(terr, kerr.UnknownTopicOrPartition) {
					continue // missing: the topic check names it
				}
				denied := errors.Is(terr, kerr.TopicAuthorizationFailed)
				checkOps(g, t.AuthorizedOperations, denied, tn, miss)
			}
		}
	}
	return nil
}

func probeGroups(ctx context.Context, cl *kgo.Client, grants map[string][]Grant, miss func(Grant, kmsg.ACLOperation, string)) error {
	if len(grants) == 0 {
		return nil
	}
	req := kmsg.NewPtrDescribeGroupsRequest()
	req.IncludeAuthorizedOperations = true
	for name := range grants {
		req.Groups = append(req.Groups, name)
	}
	slices.Sort(req.Groups)
	// Sharded by kgo to each group's coordinator.
	shards := cl.RequestSharded(ctx, req)
	for _, s := range shards {
		if errors.Is(s.Err, kerr.GroupAuthorizationFailed) {
			// Finding the coordinator already needs Describe.
			for _, name := range s.Req.(*kmsg.DescribeGroupsRequest).Groups {
				for _, gr := range grants[name] {
					checkOps(gr, 0, true, name, miss)
				}
			}
			continue
		}
		if s.Err != nil {
			return fmt.Errorf("probe group permissions: %w", s.Err)
		}
		for _, g := range s.Resp.(*kmsg.DescribeGroupsResponse).Groups {
			denied := errors.Is(kerr.ErrorForCode(g.ErrorCode), kerr.GroupAuthorizationFailed)
			for _, gr := range grants[g.Group] {
				checkOps(gr, g.AuthorizedOperations, denied, g.Group, miss)
			}
		}
	}
	return nil
}

// checkOps reports each operation of g not in the authorized bitfield ops.
// math.MinInt32 means the broker did not say: the grant is not judged.
func checkOps(g Grant, ops int32, denied bool, name string, miss func(Grant, kmsg.ACLOperation, string)) {
	for _, op := range g.Ops {
		switch {
		case denied:
			miss(g, op, name)
		case ops == math.MinInt32:
		case ops&(1<<op) == 0:
			miss(g, op, name)
		}
	}
}
