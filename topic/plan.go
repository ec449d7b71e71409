package topic

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
)

// Retention is how long each delete-policy topic keeps records.
type Retention struct {
	Events, Deliveries, Retries, Attempts, Dead time.Duration
}

// DefaultRetention: the events topic is the replay window; parked records
// stay in retries, unrewritten, as long as their lane waits (up to the
// deliverer's disable-after, 5 days by default, plus a backoff); the dead
// letters are kept long enough to be noticed and redriven.
var DefaultRetention = Retention{
	Events:     7 * 24 * time.Hour,
	Deliveries: 7 * 24 * time.Hour,
	Retries:    14 * 24 * time.Hour,
	Attempts:   7 * 24 * time.Hour,
	Dead:       30 * 24 * time.Hour,
}

// Settings are the settings of the topics Plan describes.
type Settings struct {
	Partitions        Partitions
	ReplicationFactor int16 // -1: the broker's default.replication.factor
	MinInsyncReplicas int   // 0: the broker's default
	Retention         Retention
}

// Spec is one topic as it should be created.
type Spec struct {
	Name              string
	Partitions        int32 // -1: the broker's default
	ReplicationFactor int16 // -1: the broker's default
	Configs           map[string]string
}

// Plan returns the spec of every topic of n under s.
func Plan(n Names, s Settings) []Spec {
	r := s.Retention
	for _, d := range []struct {
		dst *time.Duration
		def time.Duration
	}{
		{&r.Events, DefaultRetention.Events}, {&r.Deliveries, DefaultRetention.Deliveries},
		{&r.Retries, DefaultRetention.Retries}, {&r.Attempts, DefaultRetention.Attempts}, {&r.Dead, DefaultRetention.Dead},
	} {
		if *d.dst == 0 {
			*d.dst = d.def
		}
	}
	del := func(keep time.Duration) map[string]string {
		return map[string]string{"cleanup.policy": "delete", "retention.ms": strconv.FormatInt(keep.Milliseconds(), 10)}
	}
	specs := []Spec{
		{n.Events, s.Partitions.Events, s.ReplicationFactor, del(r.Events)},
		{n.Endpoints, s.Partitions.Other, s.ReplicationFactor, map[string]string{"cleanup.policy": "compact"}},
		{n.Deliveries, s.Partitions.Deliveries, s.ReplicationFactor, del(r.Deliveries)},
		{n.Retries, s.Partitions.Deliveries, s.ReplicationFactor, del(r.Retries)},
		{n.Attempts, s.Partitions.Other, s.ReplicationFactor, del(r.Attempts)},
		{n.Dead, s.Partitions.Other, s.ReplicationFactor, del(r.Dead)},
		// The delivery log indexes matches beside attempts: same window.
		{n.Matches, s.Partitions.Other, s.ReplicationFactor, del(r.Attempts)},
		// One partition: jobs are few, and one runner reads them all in
		// the order they were written (package internal/recovery).
		{n.Jobs, 1, s.ReplicationFactor, map[string]string{"cleanup.policy": "compact"}},
	}
	if s.MinInsyncReplicas > 0 {
		for _, sp := range specs {
			sp.Configs["min.insync.replicas"] = strconv.Itoa(s.MinInsyncReplicas)
		}
	}
	return specs
}

// ErrCreateDenied means a topic is missing and the principal may not create
// it: an administrator creates the topics (`hookstream topics create`).
var ErrCreateDenied = errors.New("topic: missing, and this principal may not create it")

// Create creates the topics of specs that do not exist yet and returns
// their names. Existing topics are left as they are; a principal without
// the Create permission (the roles, under least privilege) gets
// ErrCreateDenied only for a topic that is missing.
func Create(ctx context.Context, adm *kadm.Client, specs []Spec) (created []string, err error) {
	for _, s := range specs {
		configs := make(map[string]*string, len(s.Configs))
		for _, k := range slices.Sorted(maps.Keys(s.Configs)) {
			configs[k] = new(s.Configs[k])
		}
		resp, err := adm.CreateTopic(ctx, s.Partitions, s.ReplicationFactor, configs, s.Name)
		if err == nil {
			err = resp.Err
		}
		switch {
		case errors.Is(err, kerr.TopicAlreadyExists):
		case errors.Is(err, kerr.TopicAuthorizationFailed), errors.Is(err, kerr.ClusterAuthorizationFailed):
			// Kafka refuses before looking whether the topic exists.
			// Listed only now: the client caches what a metadata
			// request answered, and a topic listed as missing before
			// its creation would stay missing for a while.
			d, lerr := adm.ListTopics(ctx, s.Name)
			if lerr == nil && d[s.Name].Err == nil && len(d[s.Name].Partitions) > 0 {
				continue
			}
			return created, fmt.Errorf("%w: %s (create it with `hookstream topics create`, or grant Create on it)", ErrCreateDenied, s.Name)
		case err != nil:
			return created, fmt.Errorf("create topic %s: %w", s.Name, err)
		default:
			created = append(created, s.Name)
		}
	}
	return created, nil
}
