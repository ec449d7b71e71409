package subscription

import (
	"context"
	"slices"

	"github.com/redis/go-redis/v9"
)

// MatchDisabled returns the ids of tenant's disabled endpoints whose
// filters select eventType: fanout records them with each event, so the
// delivery log shows why such an endpoint got nothing. Like Match, it
// unions the few filter sets that can select eventType (disabled endpoints
// have sets of their own), so its cost does not grow with the tenant's
// endpoint count, and it is cached until the next endpoint change.
func (s *Store) MatchDisabled(ctx context.Context, tenant, eventType string) ([]string, error) {
	k := matchKey{tenant, eventType}
	s.mu.Lock()
	ids, ok := s.cache.disabled[k]
	s.mu.Unlock()
	if ok {
		return slices.Clone(ids), nil
	}
	filters := filtersFor(eventType)
	keys := make([]string, len(filters))
	for i, f := range filters {
		keys[i] = s.keys.disabledIndex(tenant, f)
	}
	t, err := s.readBuilt(ctx, func(p redis.Pipeliner) func() {
		cmd := p.SUnion(ctx, keys...)
		return func() { ids = cmd.Val() }
	})
	if err != nil {
		return nil, err
	}
	slices.Sort(ids)
	s.remember(t, func(c *cache) { c.disabled[k] = ids })
	return slices.Clone(ids), nil
}
