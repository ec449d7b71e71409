package fanout

import (
	"context"
	"fmt"

	"github.com/hookstream/hookstream/internal/record"
)

// disabledMatcher is implemented by matchers that can also name the
// disabled endpoints an event would have gone to (subscription.Store).
type disabledMatcher interface {
	MatchDisabled(ctx context.Context, tenant, eventType string) ([]string, error)
}

// matchRecord is the delivery log's record of c: the endpoints it matched
// (ids), the disabled ones it would have, and where the event is. It goes
// into the batch's transaction with the delivery records, so the log
// agrees with them; nil when no matches topic is configured.
func (f *Fanout) matchRecord(ctx context.Context, c *candidate, ids []string) (*record.Match, error) {
	if f.cfg.topics.Matches == "" {
		return nil, nil
	}
	m := &record.Match{
		Tenant: c.tenant, EventID: c.id, EventType: c.typ, Endpoints: ids,
		Topic: c.r.Topic, Partition: c.r.Partition, Offset: c.r.Offset, At: c.r.Timestamp.UTC(),
	}
	if dm, ok := f.matcher.(disabledMatcher); ok {
		dis, err := dm.MatchDisabled(ctx, c.tenant, c.typ)
		if err != nil {
			return nil, fmt.Errorf("match disabled %s/%s: %w", c.tenant, c.typ, err)
		}
		m.Disabled = dis
	}
	return m, nil
}

// appendMatch appends c's match record to the batch's output.
func (f *Fanout) appendMatch(ctx context.Context, c *candidate, ids []string) error {
	m, err := f.matchRecord(ctx, c, ids)
	if err != nil || m == nil {
		return err
	}
	r, err := m.Record(f.cfg.topics.Matches)
	if err != nil {
		return err
	}
	r.Context = c.r.Context
	f.out = append(f.out, r)
	return nil
}
