// Package topic names Hookstream's Kafka topics and creates them when missing.
package topic

import (
	"context"
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kadm"
)

// DefaultPrefix is prepended to every topic name unless configured otherwise.
const DefaultPrefix = "hookstream."

// Names holds the full name of every topic for one prefix.
type Names struct {
	Events     string // canonical events, keyed by ordering key
	Endpoints  string // compacted endpoint store, keyed by endpoint id
	Deliveries string // one record per (event, endpoint), keyed by endpoint id
	Retries    string // parked deliveries waiting for a long backoff
	Attempts   string // one record per delivery attempt
	Dead       string // exhausted or poison records, with the reason
	Matches    string // one record per accepted event: the endpoints it matched (delivery log)
	Jobs       string // compacted recovery jobs (resend, recover, replay), keyed by job id
}

// New returns the topic names for prefix.
func New(prefix string) Names {
	return Names{
		Events:     prefix + "events",
		Endpoints:  prefix + "endpoints",
		Deliveries: prefix + "deliveries",
		Retries:    prefix + "retries",
		Attempts:   prefix + "attempts",
		Dead:       prefix + "dead",
		Matches:    prefix + "matches",
		Jobs:       prefix + "jobs",
	}
}

// All lists every topic name.
func (n Names) All() []string {
	return []string{n.Events, n.Endpoints, n.Deliveries, n.Retries, n.Attempts, n.Dead, n.Matches, n.Jobs}
}

// Partitions is how many partitions Ensure gives each topic it creates; -1
// leaves the choice to the broker (num.partitions). Deliveries and Retries
// always get the same count, so one deliverer owns partition i of both.
type Partitions struct {
	Events     int32
	Deliveries int32 // also used for Retries
	Other      int32 // endpoints, attempts, dead
}

// DefaultPartitions lets the broker decide.
var DefaultPartitions = Partitions{Events: -1, Deliveries: -1, Other: -1}

// ErrPartitionMismatch means the deliveries and retries topics exist with
// different partition counts, which breaks per-endpoint ordering across them.
var ErrPartitionMismatch = errors.New("topic: deliveries and retries partition counts differ")

// Ensure creates every missing topic with the default settings and the
// partition counts p, and checks that deliveries and retries have the same
// partition count. Topics that already exist are left as they are.
func Ensure(ctx context.Context, adm *kadm.Client, n Names, p Partitions) error {
	if _, err := Create(ctx, adm, Plan(n, Settings{Partitions: p, ReplicationFactor: -1})); err != nil {
		return err
	}
	details, err := adm.ListTopics(ctx, n.Deliveries, n.Retries)
	if err != nil {
		return fmt.Errorf("list topics: %w", err)
	}
	if a, b := len(details[n.Deliveries].Partitions), len(details[n.Retries].Partitions); a != b {
		return fmt.Errorf("%w: %s has %d, %s has %d", ErrPartitionMismatch, n.Deliveries, a, n.Retries, b)
	}
	return nil
}
