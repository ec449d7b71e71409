package subscription

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/segmentio/encoding/json"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hookstream/hookstream/internal/record"
	"github.com/hookstream/hookstream/signature"
	"github.com/hookstream/hookstream/topic"
)

// DefaultRedisPrefix starts every Redis key of the store.
const DefaultRedisPrefix = "hookstream:"

// HeaderVersion carries an endpoint record's Version, also on tombstones.
const HeaderVersion = "hookstream-version"

// Rotation limits.
const (
	DefaultGrace = 24 * time.Hour
	MaxGrace     = 30 * 24 * time.Hour
	// MaxSecrets caps the secrets an endpoint signs with; rotating again
	// while that many are in their grace period drops the oldest.
	MaxSecrets = 5
)

type config struct {
	topicPrefix  string
	redisPrefix  string
	allowPrivate bool
	brand        string
	maxEndpoints int
	log          *slog.Logger
}

// DefaultMaxEndpoints is how many endpoints one tenant may have unless
// WithMaxEndpoints says otherwise.
const DefaultMaxEndpoints = 1000

// Option configures a Store.
type Option func(*config)

// WithTopicPrefix sets the Kafka topic prefix (default topic.DefaultPrefix,
// "hookstream."); the store uses <prefix>endpoints.
func WithTopicPrefix(p string) Option { return func(c *config) { c.topicPrefix = p } }

// WithRedisPrefix sets the prefix of every Redis key (default
// DefaultRedisPrefix, "hookstream:").
func WithRedisPrefix(p string) Option { return func(c *config) { c.redisPrefix = p } }

// WithAllowPrivate accepts endpoint URLs on loopback, private, link-local
// and other internal addresses (default false; `hookstream dev` sets it).
func WithAllowPrivate(allow bool) Option { return func(c *config) { c.allowPrivate = allow } }

// WithSignatureBrand sets the seed scheme's brand the deliverers sign with
// (default signature.DefaultBrand), whose X-<Brand>-* headers an endpoint
// may not set.
func WithSignatureBrand(brand string) Option { return func(c *config) { c.brand = brand } }

// WithMaxEndpoints caps the endpoints of one tenant (default
// DefaultMaxEndpoints), so that no tenant can take the deliverers' capacity
// with endpoints. Creates racing each other may pass it by a few.
func WithMaxEndpoints(n int) Option { return func(c *config) { c.maxEndpoints = n } }

// WithLogger sets the logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.log = l } }

// Store keeps endpoints: the compacted endpoints topic is the source of
// truth, Redis the materialised cache and matching index, and an in-process
// cache in front of Redis serves the hot read paths (Match, Endpoint).
//
// Writes (Create, Update, Delete, RotateSecret, Disable) go to Kafka first
// and return once Kafka acknowledged them and Redis applied them. Reads
// wait while the Redis cache is being rebuilt, and never report "no
// endpoints" from a flushed Redis. Run must run in at least one process
// (every role runs it): it rebuilds Redis when needed and repairs it from
// the topic.
type Store struct {
	kafka   *kgo.Client
	rdb     redis.UniversalClient
	topic   string
	keys    keys
	cfg     config
	valid   validator
	now     func() time.Time
	lockTTL time.Duration
	// writeTimeout bounds waiting for Kafka's ack of a write, which a
	// client without a delivery timeout would retry forever.
	writeTimeout time.Duration

	mu    sync.Mutex
	cache *cache
}

// NewStore returns a store writing through kafka (a plain, non-transactional
// client: the store produces with ProduceSync and builds its own consumers
// from the client's connection options) and caching in rdb. filters decides
// which event filters are valid (*schemas.Catalog).
func NewStore(kafka *kgo.Client, rdb redis.UniversalClient, filters Filters, opts ...Option) *Store {
	c := config{topicPrefix: topic.DefaultPrefix, redisPrefix: DefaultRedisPrefix, brand: signature.DefaultBrand, maxEndpoints: DefaultMaxEndpoints, log: slog.Default()}
	for _, o := range opts {
		o(&c)
	}
	return &Store{
		kafka:   kafka,
		rdb:     rdb,
		topic:   topic.New(c.topicPrefix).Endpoints,
		keys:    newKeys(c.redisPrefix),
		cfg:     c,
		valid:   validator{filters: filters, allowPrivate: c.allowPrivate, brand: c.brand, resolver: net.DefaultResolver, lookupTimeout: 3 * time.Second},
		now:     time.Now,
		lockTTL: 10 * time.Second,
		cache:   newCache(tag{}),

		writeTimeout: 10 * time.Second,
	}
}

// Create validates in, gives the endpoint an id and (unless supplied) a
// secret, and stores it. The returned endpoint holds the secret.
func (s *Store) Create(ctx context.Context, tenant string, in EndpointInput) (*Endpoint, error) {
	now := s.now().UTC()
	e := &Endpoint{
		ID:          newID(now),
		Tenant:      tenant,
		URL:         in.URL,
		Description: in.Description,
		Events:      slices.Clone(in.Events),
		Signature:   in.Signature,
		Ordering:    in.Ordering,
		RateLimit:   in.RateLimit,
		Headers:     maps.Clone(in.Headers),
		Timeout:     in.Timeout,
		Version:     1,
		CreatedAt:   now,
		UpdatedAt:   now,
	}
	if e.Signature == "" {
		e.Signature = SchemeStandard
	}
	if e.Ordering == "" {
		e.Ordering = OrderingStrict
	}
	if len(e.Headers) == 0 {
		e.Headers = nil
	}
	secret := in.Secret
	if secret != "" {
		if err := checkSecret(secret); err != nil {
			return nil, err
		}
	}
	if err := s.valid.endpoint(ctx, nil, e); err != nil {
		return nil, err
	}
	if err := s.checkQuota(ctx, tenant); err != nil {
		return nil, err
	}
	if secret == "" {
		var err error
		if secret, err = signature.NewSecret(); err != nil {
			return nil, err
		}
	}
	e.Secrets = []Secret{{Value: secret}}
	if err := s.write(ctx, e.ID, e); err != nil {
		if errors.Is(err, ErrNotCached) {
			return e, err
		}
		return nil, err
	}
	return e, nil
}

// checkQuota returns a *FieldError when tenant has its maximum of endpoints.
func (s *Store) checkQuota(ctx context.Context, tenant string) error {
	var n int64
	err := s.whenBuilt(ctx, func(p redis.Pipeliner) func() {
		cmd := p.ZCard(ctx, s.keys.tenant(tenant))
		return func() { n = cmd.Val() }
	})
	if err != nil {
		return err
	}
	if n >= int64(s.cfg.maxEndpoints) {
		return &FieldError{"", fmt.Sprintf("tenant has %d endpoints, at most %d allowed; delete one first", n, s.cfg.maxEndpoints)}
	}
	return nil
}

// Get returns tenant's endpoint id, or ErrNotFound (also for another
// tenant's id). It reads Redis, not the in-process cache.
func (s *Store) Get(ctx context.Context, tenant, id string) (*Endpoint, error) {
	e, _, err := s.load(ctx, id)
	if err != nil {
		return nil, err
	}
	if e == nil || e.Tenant != tenant {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	return e, nil
}

// List returns up to limit of tenant's endpoints, oldest first, after
// cursor ("" = from the start), and the cursor of the next page ("" when
// this is the last). The cursor is an endpoint id, and stays valid after
// its endpoint is deleted; ErrBadCursor when it is no endpoint id.
func (s *Store) List(ctx context.Context, tenant, cursor string, limit int) ([]*Endpoint, string, error) {
	if limit < 1 {
		limit = 1
	}
	if cursor != "" && !isID(cursor) {
		return nil, "", ErrBadCursor
	}
	min := "-"
	if cursor != "" {
		min = "(" + cursor
	}
	var ids []string
	err := s.whenBuilt(ctx, func(p redis.Pipeliner) func() {
		cmd := p.ZRangeByLex(ctx, s.keys.tenant(tenant), &redis.ZRangeBy{Min: min, Max: "+", Count: int64(limit) + 1})
		return func() { ids = cmd.Val() }
	})
	if err != nil {
		return nil, "", err
	}
	next := ""
	if len(ids) > limit {
		ids = ids[:limit]
		next = ids[limit-1]
	}
	if len(ids) == 0 {
		return nil, "", nil
	}
	vals, err := s.rdb.HMGet(ctx, s.keys.data, ids...).Result()
	if err != nil {
		return nil, "", redisErr(err)
	}
	out := make([]*Endpoint, 0, len(vals))
	for _, v := range vals {
		str, ok := v.(string)
		if !ok {
			continue // deleted between the two reads
		}
		e, err := decode([]byte(str))
		if err != nil {
			return nil, "", err
		}
		out = append(out, e)
	}
	return out, next, nil
}

// Update applies p to tenant's endpoint id and stores the result.
func (s *Store) Update(ctx context.Context, tenant, id string, p Patch) (*Endpoint, error) {
	return s.modify(ctx, tenant, id, func(e *Endpoint) (bool, error) {
		before := e.clone()
		p.apply(e)
		// A patch that changes nothing (PATCH {}) writes nothing: the
		// version counts changes.
		return !samePatchable(before, e), nil
	})
}

// samePatchable reports whether a and b agree on every field a Patch sets.
func samePatchable(a, b *Endpoint) bool {
	return a.URL == b.URL && a.Description == b.Description && slices.Equal(a.Events, b.Events) &&
		a.Signature == b.Signature && a.Ordering == b.Ordering && a.RateLimit == b.RateLimit &&
		a.Timeout == b.Timeout && maps.Equal(a.Headers, b.Headers) &&
		a.Disabled == b.Disabled && a.DisabledReason == b.DisabledReason
}

// Delete removes tenant's endpoint id: a tombstone in the topic, and gone
// from Redis when Delete returns.
func (s *Store) Delete(ctx context.Context, tenant, id string) error {
	unlock, err := s.lock(ctx, id)
	if err != nil {
		return err
	}
	defer unlock()
	e, _, err := s.load(ctx, id)
	if err != nil {
		return err
	}
	if e == nil || e.Tenant != tenant {
		return fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	e.Version++
	return s.writeTombstone(ctx, e)
}

// RotateSecret gives tenant's endpoint id a new secret, first in the list;
// the secrets it had expire after grace (0: at once), and both sign until
// then. The returned endpoint holds the new secret first.
func (s *Store) RotateSecret(ctx context.Context, tenant, id string, grace time.Duration) (*Endpoint, error) {
	if grace < 0 || grace > MaxGrace {
		return nil, &FieldError{"/grace", fmt.Sprintf("must be between 0s and %s", MaxGrace)}
	}
	secret, err := signature.NewSecret()
	if err != nil {
		return nil, err
	}
	return s.modify(ctx, tenant, id, func(e *Endpoint) (bool, error) {
		until := s.now().UTC().Add(grace)
		for i := range e.Secrets {
			if old := &e.Secrets[i]; old.ExpiresAt.IsZero() || old.ExpiresAt.After(until) {
				old.ExpiresAt = until
			}
		}
		e.Secrets = append([]Secret{{Value: secret}}, e.Secrets...)
		return true, nil
	})
}

// Disable turns delivery to endpoint id off (the deliverer's call on 410
// Gone or after failing too long), whatever its tenant. Disabling a
// disabled endpoint changes nothing.
func (s *Store) Disable(ctx context.Context, id, reason string) error {
	_, err := s.modify(ctx, "", id, func(e *Endpoint) (bool, error) {
		if e.Disabled {
			return false, nil
		}
		e.Disabled, e.DisabledReason = true, reason
		return true, nil
	})
	return err
}

// modify is a read-modify-write of one endpoint under its write lock;
// tenant "" skips the tenant check. fn reports whether it changed e. Only
// the fields fn changed are validated (see validator.endpoint).
func (s *Store) modify(ctx context.Context, tenant, id string, fn func(e *Endpoint) (bool, error)) (*Endpoint, error) {
	unlock, err := s.lock(ctx, id)
	if err != nil {
		return nil, err
	}
	defer unlock()
	e, _, err := s.load(ctx, id)
	if err != nil {
		return nil, err
	}
	if e == nil || (tenant != "" && e.Tenant != tenant) {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	old := e.clone()
	changed, err := fn(e)
	if err != nil || !changed {
		return e, err
	}
	now := s.now().UTC()
	e.Secrets = liveSecrets(e.Secrets, now)
	e.Version++
	e.UpdatedAt = now
	if err := s.valid.endpoint(ctx, old, e); err != nil {
		return nil, err
	}
	if err := s.write(ctx, e.ID, e); err != nil {
		if errors.Is(err, ErrNotCached) {
			return e, err
		}
		return nil, err
	}
	return e, nil
}

// liveSecrets drops expired secrets and keeps at most MaxSecrets, newest
// first.
func liveSecrets(secrets []Secret, now time.Time) []Secret {
	out := secrets[:0]
	for _, sec := range secrets {
		if sec.ExpiresAt.IsZero() || now.Before(sec.ExpiresAt) {
			out = append(out, sec)
		}
	}
	if len(out) > MaxSecrets {
		out = out[:MaxSecrets]
	}
	return out
}

// lock takes the write lock of one endpoint so that two writers never
// build on the same version (a lost update). A writer that dies holding
// it blocks writes to that endpoint for lockTTL at most.
func (s *Store) lock(ctx context.Context, id string) (unlock func(), err error) {
	token := randomToken()
	key := s.keys.lock(id)
	deadline := time.Now().Add(2 * time.Second)
	for {
		ok, err := s.rdb.SetNX(ctx, key, token, s.lockTTL).Result()
		if err != nil {
			return nil, redisErr(err)
		}
		if ok {
			break
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%w: endpoint %s is being changed by another request", ErrConflict, id)
		}
		if err := sleep(ctx, 20*time.Millisecond); err != nil {
			return nil, err
		}
	}
	return func() {
		// Not the request's ctx: release even when it was cancelled.
		c, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		_ = unlockScript.Run(c, s.rdb, []string{key}, token).Err()
	}, nil
}

// write produces e to the topic, then applies it to Redis.
func (s *Store) write(ctx context.Context, id string, e *Endpoint) error {
	value, err := json.Marshal(e)
	if err != nil {
		return err
	}
	return s.produceAndApply(ctx, change{id: id, value: value, ep: e}, e)
}

func (s *Store) writeTombstone(ctx context.Context, e *Endpoint) error {
	return s.produceAndApply(ctx, change{id: e.ID}, e)
}

func (s *Store) produceAndApply(ctx context.Context, c change, e *Endpoint) error {
	r := &kgo.Record{
		Topic: s.topic,
		Key:   []byte(c.id),
		Value: c.value,
		Headers: []kgo.RecordHeader{
			{Key: record.HeaderTenant, Value: []byte(e.Tenant)},
			{Key: HeaderVersion, Value: strconv.AppendInt(nil, e.Version, 10)},
		},
	}
	err := s.produce(ctx, r)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("%w: kafka: producing to %s: %w", ErrUnavailable, s.topic, err)
	}
	c.offset = r.Offset
	// Kafka has the change; Run would apply it eventually, but the caller
	// is promised read-your-writes, so try a little before giving up.
	var res []int64
	for attempt := 0; ; attempt++ {
		res, err = s.apply(ctx, []change{c})
		if err == nil || attempt == 2 || ctx.Err() != nil {
			break
		}
		if sleep(ctx, 100*time.Millisecond<<attempt) != nil {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("%w: recorded in kafka but not yet in the cache: %w", ErrNotCached, err)
	}
	if res[0] == superseded {
		// A later record of this endpoint is already applied: another
		// writer got past the lock (it expired) and superseded this one.
		return fmt.Errorf("%w: endpoint %s was changed concurrently", ErrConflict, c.id)
	}
	return nil
}

// produce waits for Kafka's ack of r, at most writeTimeout. It does not use
// ProduceSync, which keeps waiting past its context once an idempotent
// request is in flight: after a timeout the record may still be written,
// and Run applies it then.
func (s *Store) produce(ctx context.Context, r *kgo.Record) error {
	ctx, cancel := context.WithTimeout(ctx, s.writeTimeout)
	defer cancel()
	done := make(chan error, 1)
	s.kafka.Produce(ctx, r, func(_ *kgo.Record, err error) { done <- err })
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// load reads one endpoint from Redis (nil when there is none), waiting
// while the cache is being rebuilt, and returns the tag it was read at.
func (s *Store) load(ctx context.Context, id string) (*Endpoint, tag, error) {
	var raw string
	t, err := s.readBuilt(ctx, func(p redis.Pipeliner) func() {
		cmd := p.HGet(ctx, s.keys.data, id)
		return func() { raw = cmd.Val() }
	})
	if err != nil || raw == "" {
		return nil, t, err
	}
	e, err := decode([]byte(raw))
	return e, t, err
}

func decode(b []byte) (*Endpoint, error) {
	var e Endpoint
	if err := json.Unmarshal(b, &e); err != nil {
		return nil, fmt.Errorf("subscription: decoding endpoint: %w", err)
	}
	return &e, nil
}

// whenBuilt is readBuilt without the tag.
func (s *Store) whenBuilt(ctx context.Context, queue func(p redis.Pipeliner) func()) error {
	_, err := s.readBuilt(ctx, queue)
	return err
}

// readBuilt runs the commands queue adds in one MULTI/EXEC together with
// reading the generation marker and the change counter. While the marker is
// missing (Redis flushed or new, rebuild under way) it waits and tries
// again: a half-built cache is never read. queue returns the function that
// collects its results once they are in.
func (s *Store) readBuilt(ctx context.Context, queue func(p redis.Pipeliner) func()) (tag, error) {
	for {
		var gen *redis.StringCmd
		var changes *redis.StringCmd
		var collect func()
		_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
			gen = p.Get(ctx, s.keys.generation)
			changes = p.Get(ctx, s.keys.changes)
			collect = queue(p)
			return nil
		})
		if err != nil && !errors.Is(err, redis.Nil) {
			return tag{}, redisErr(err)
		}
		if g := gen.Val(); g != "" {
			n, _ := changes.Int64()
			collect()
			return tag{gen: g, changes: n}, nil
		}
		if err := sleep(ctx, 50*time.Millisecond); err != nil {
			return tag{}, err
		}
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func randomToken() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
