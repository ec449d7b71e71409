package subscription

import (
	"context"
	"fmt"
	"slices"
	"strconv"

	"github.com/redis/go-redis/v9"
)

// tag identifies a state of the Redis cache: the generation (which rebuild
// it descends from) and the change counter. Data read together with a tag
// in one MULTI/EXEC reflects every change up to that counter.
type tag struct {
	gen     string
	changes int64
}

type matchKey struct{ tenant, eventType string }

// cache holds results read from Redis at exactly one tag.
type cache struct {
	tag   tag
	match map[matchKey][]string
	eps   map[string]*Endpoint // nil: not found
	// disabled caches MatchDisabled (disabled.go).
	disabled map[matchKey][]string
}

// maxCached bounds the in-process cache; past it the cache starts over.
const maxCached = 100_000

func newCache(t tag) *cache {
	return &cache{tag: t, match: map[matchKey][]string{}, eps: map[string]*Endpoint{}, disabled: map[matchKey][]string{}}
}

// Match returns the ids of tenant's enabled endpoints whose filters select
// eventType (fanout's hot path). It answers from the in-process cache when
// nothing changed since the last revalidation, else with one Redis round
// trip that unions the index sets of the few filters that can select
// eventType, so its cost does not grow with the tenant's endpoint count.
// While the Redis cache is being rebuilt it waits (bounded by ctx).
func (s *Store) Match(ctx context.Context, tenant, eventType string) ([]string, error) {
	return s.matchSets(ctx, tenant, eventType, func(c *cache) map[matchKey][]string { return c.match }, s.keys.index)
}

// matchSets unions the index sets (named by index) of the filters that can
// select eventType, cached in the map set picks: Match and MatchDisabled
// differ only in those two.
func (s *Store) matchSets(ctx context.Context, tenant, eventType string, set func(*cache) map[matchKey][]string, index func(tenant, filter string) string) ([]string, error) {
	k := matchKey{tenant, eventType}
	s.mu.Lock()
	ids, ok := set(s.cache)[k]
	s.mu.Unlock()
	if ok {
		return slices.Clone(ids), nil
	}
	filters := filtersFor(eventType)
	keys := make([]string, len(filters))
	for i, f := range filters {
		keys[i] = index(tenant, f)
	}
	t, err := s.readBuilt(ctx, func(p redis.Pipeliner) func() {
		cmd := p.SUnion(ctx, keys...)
		return func() { ids = cmd.Val() }
	})
	if err != nil {
		return nil, err
	}
	slices.Sort(ids)
	s.remember(t, func(c *cache) { set(c)[k] = ids })
	return slices.Clone(ids), nil
}

// filtersFor lists every filter that selects eventType under
// schemas.MatchFilter: "*", the type itself, and "<prefix>.*" for each
// dot in it ("a.b.c": "a.*", "a.b.*").
func filtersFor(eventType string) []string {
	out := []string{"*", eventType}
	for i := 0; i < len(eventType); i++ {
		if eventType[i] == '.' {
			out = append(out, eventType[:i+1]+"*")
		}
	}
	return out
}

// Endpoint returns endpoint id, whatever its tenant, for the deliverer;
// ErrNotFound once it is deleted. It is served from the in-process cache
// like Match. The result is shared: do not modify it.
func (s *Store) Endpoint(ctx context.Context, id string) (*Endpoint, error) {
	s.mu.Lock()
	e, ok := s.cache.eps[id]
	s.mu.Unlock()
	if !ok {
		var t tag
		var err error
		e, t, err = s.load(ctx, id)
		if err != nil {
			return nil, err
		}
		s.remember(t, func(c *cache) { c.eps[id] = e })
	}
	if e == nil {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	return e, nil
}

// remember stores a result read at t. A result from an older state than
// the cache's is dropped; a newer one starts a new cache, so an entry is
// only ever served at the tag it was read at.
func (s *Store) remember(t tag, put func(c *cache)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.cache
	switch {
	case t == c.tag:
	case t.gen == c.tag.gen && t.changes > c.tag.changes, c.tag.gen == "":
		c = newCache(t)
		s.cache = c
	default:
		return
	}
	if len(c.match)+len(c.eps)+len(c.disabled) >= maxCached {
		c = newCache(t)
		s.cache = c
	}
	put(c)
}

// Refresh makes the next Match and Endpoint reflect every change applied
// before it was called: one round trip reads the generation and change
// counter, and the in-process cache is dropped if they moved. Fanout calls
// it after each poll, so an endpoint created before an event was published
// is matched when that event is processed.
func (s *Store) Refresh(ctx context.Context) error {
	vals, err := s.rdb.MGet(ctx, s.keys.generation, s.keys.changes).Result()
	if err != nil {
		return redisErr(err)
	}
	var t tag
	t.gen, _ = vals[0].(string)
	if n, ok := vals[1].(string); ok {
		t.changes, _ = strconv.ParseInt(n, 10, 64)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if c := s.cache.tag; t == c || (t.gen == c.gen && t.changes < c.changes) {
		return nil // unchanged, or a slower concurrent read of an older state
	}
	s.cache = newCache(t)
	return nil
}

// invalidate drops the in-process cache (tests and benchmarks).
func (s *Store) invalidate() {
	s.mu.Lock()
	s.cache = newCache(tag{})
	s.mu.Unlock()
}
