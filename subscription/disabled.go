package subscription

import (
	"context"
	"slices"

	"github.com/redis/go-redis/v9"
)

// MatchDisabled returns the ids of tenant's disabled endpoints whose
// filters select eventType: fanout records them with each event, so the
// delivery log shows why such an endpoint got nothing. Disabled endpoints
// are not in the filter index, so this reads the tenant's endpoints; the
// result is cached like Match's until the next endpoint change.
func (s *Store) MatchDisabled(ctx context.Context, tenant, eventType string) ([]string, error) {
	k := matchKey{tenant, eventType}
	s.mu.Lock()
	ids, ok := s.cache.disabled[k]
	s.mu.Unlock()
	if ok {
		return slices.Clone(ids), nil
	}
	var all []string
	if _, err := s.readBuilt(ctx, func(p redis.Pipeliner) func() {
		cmd := p.ZRange(ctx, s.keys.tenant(tenant), 0, -1)
		return func() { all = cmd.Val() }
	}); err != nil {
		return nil, err
	}
	var raws []any
	t, err := s.readBuilt(ctx, func(p redis.Pipeliner) func() {
		if len(all) == 0 {
			return func() {}
		}
		cmd := p.HMGet(ctx, s.keys.data, all...)
		return func() { raws = cmd.Val() }
	})
	if err != nil {
		return nil, err
	}
	ids = []string{}
	for _, v := range raws {
		raw, ok := v.(string)
		if !ok {
			continue
		}
		e, err := decode([]byte(raw))
		if err != nil || !e.Disabled || e.Tenant != tenant || !e.Matches(eventType) {
			continue
		}
		ids = append(ids, e.ID)
	}
	slices.Sort(ids)
	s.remember(t, func(c *cache) { c.disabled[k] = ids })
	return slices.Clone(ids), nil
}
