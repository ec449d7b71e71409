package topic

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
)

// Requirements are what Check holds the topics to.
type Requirements struct {
	// MinRetriesRetention is the longest a record may stay parked in the
	// retries topic; a shorter retention deletes parked deliveries.
	MinRetriesRetention time.Duration
	// AllowUnsafe accepts a replication factor of 1 (a single-broker
	// development cluster).
	AllowUnsafe bool
}

// Problem is one setting of one topic that is wrong.
type Problem struct {
	Topic   string
	Setting string
	Found   string
	Fix     string
	// Warning marks a setting worth fixing that cannot lose data alone.
	Warning bool
}

func (p Problem) String() string {
	return fmt.Sprintf("topic %s: %s is %s; fix: %s", p.Topic, p.Setting, p.Found, p.Fix)
}

// ErrUnsafe means a topic configuration can lose data.
var ErrUnsafe = errors.New("topic configuration can lose data")

// Unsafe returns an error wrapping ErrUnsafe that names every problem of
// ps that is not a warning, or nil when there is none.
func Unsafe(ps []Problem) error {
	var lines []string
	for _, p := range ps {
		if !p.Warning {
			lines = append(lines, "  "+p.String())
		}
	}
	if len(lines) == 0 {
		return nil
	}
	return fmt.Errorf("%w:\n%s", ErrUnsafe, strings.Join(lines, "\n"))
}

// alter is the fix of a topic config.
func alter(topic, kv string) string {
	return fmt.Sprintf("kafka-configs.sh --bootstrap-server <brokers> --alter --entity-type topics --entity-name %s --add-config %s", topic, kv)
}

// Check describes the topics of n and returns the settings that break
// Hookstream's guarantees (see Requirements) or weaken them (warnings).
func Check(ctx context.Context, adm *kadm.Client, n Names, r Requirements) ([]Problem, error) {
	details, err := adm.ListTopics(ctx, n.All()...)
	if err != nil {
		return nil, fmt.Errorf("list topics: %w", err)
	}
	var ps []Problem
	var present []string
	rf := map[string]int{}
	for _, name := range n.All() {
		d, ok := details[name]
		if !ok || d.Err != nil || len(d.Partitions) == 0 {
			found := "missing"
			if ok && d.Err != nil && !errors.Is(d.Err, kerr.UnknownTopicOrPartition) {
				found = "not readable (" + d.Err.Error() + ")"
			}
			ps = append(ps, Problem{Topic: name, Setting: "existence", Found: found, Fix: "hookstream topics create (as an administrator), or grant this principal Describe on it"})
			continue
		}
		present = append(present, name)
		rf[name] = len(d.Partitions[0].Replicas)
		if rf[name] < 2 && !r.AllowUnsafe {
			ps = append(ps, Problem{Topic: name, Setting: "replication factor", Found: strconv.Itoa(rf[name]),
				Fix: "recreate it with replication factor 3 (hookstream topics create --replication-factor 3), or on a single-broker development cluster pass --allow-unsafe-topics"})
		}
	}
	if dd, dr := details[n.Deliveries], details[n.Retries]; len(dd.Partitions) > 0 && len(dr.Partitions) > 0 && len(dd.Partitions) != len(dr.Partitions) {
		ps = append(ps, Problem{Topic: n.Retries, Setting: "partition count", Found: fmt.Sprintf("%d while %s has %d", len(dr.Partitions), n.Deliveries, len(dd.Partitions)),
			Fix: fmt.Sprintf("give both the same count (kafka-topics.sh --alter --partitions %d --topic <the smaller one>), with the deliverers stopped", max(len(dd.Partitions), len(dr.Partitions)))})
	}
	if len(present) == 0 {
		return ps, nil
	}
	rcs, err := adm.DescribeTopicConfigs(ctx, present...)
	if err != nil {
		return nil, fmt.Errorf("describe topic configs: %w", err)
	}
	for _, rc := range rcs {
		if rc.Err != nil {
			return nil, fmt.Errorf("describe configs of topic %s: %w", rc.Name, rc.Err)
		}
		cfg := map[string]string{}
		for _, c := range rc.Configs {
			if c.Value != nil {
				cfg[c.Key] = *c.Value
			}
		}
		ps = append(ps, checkConfigs(n, rc.Name, cfg, rf[rc.Name], r)...)
	}
	return ps, nil
}

func checkConfigs(n Names, name string, cfg map[string]string, rf int, r Requirements) []Problem {
	var ps []Problem
	switch name {
	case n.Endpoints:
		// A delete policy (alone or with compact) drops endpoints, the
		// source of truth, after the retention.
		if p := cfg["cleanup.policy"]; p != "compact" {
			ps = append(ps, Problem{Topic: name, Setting: "cleanup.policy", Found: strconv.Quote(p), Fix: alter(name, "cleanup.policy=compact")})
		}
	case n.Retries:
		if ms, err := strconv.ParseInt(cfg["retention.ms"], 10, 64); err == nil && ms >= 0 && time.Duration(ms)*time.Millisecond < r.MinRetriesRetention {
			want := r.MinRetriesRetention.Milliseconds()
			ps = append(ps, Problem{Topic: name, Setting: "retention.ms",
				Found: fmt.Sprintf("%d (%v), shorter than the longest parking %v", ms, time.Duration(ms)*time.Millisecond, r.MinRetriesRetention),
				Fix:   alter(name, "retention.ms="+strconv.FormatInt(want, 10))})
		}
	}
	if v, err := strconv.Atoi(cfg["min.insync.replicas"]); err == nil && rf >= 2 && v < 2 {
		ps = append(ps, Problem{Topic: name, Setting: "min.insync.replicas", Found: strconv.Itoa(v),
			Fix: alter(name, "min.insync.replicas=2") + " (an acknowledged write otherwise lives on one broker)", Warning: true})
	}
	return ps
}
