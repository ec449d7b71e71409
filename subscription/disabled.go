package subscription

import (
	"context"
)

// MatchDisabled returns the ids of tenant's disabled endpoints whose
// filters select eventType: fanout records them with each event, so the
// delivery log shows why such an endpoint got nothing. Like Match, it
// unions the few filter sets that can select eventType (disabled endpoints
// have sets of their own), so its cost does not grow with the tenant's
// endpoint count, and it is cached until the next endpoint change.
func (s *Store) MatchDisabled(ctx context.Context, tenant, eventType string) ([]string, error) {
	return s.matchSets(ctx, tenant, eventType, func(c *cache) map[matchKey][]string { return c.disabled }, s.keys.disabledIndex)
}
