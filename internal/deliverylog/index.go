// Package deliverylog is the searchable delivery log: an index in Redis of
// every delivery attempt, kept for a retention window and rebuilt from the
// attempts topic, which stays the source of truth. Index writes are
// idempotent (an attempt's id is its Kafka coordinates), so replaying a
// topic after a crash or a flush never doubles an entry.
package deliverylog

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hookstream/hookstream/deliverer"
)

// ErrNotFound: no such entry or cursor for this tenant. Another tenant's
// ids and cursors are not found either.
var ErrNotFound = errors.New("deliverylog: not found")

// ErrBadCursor: the cursor is not one this index handed out.
var ErrBadCursor = errors.New("deliverylog: invalid cursor")

// DefaultRetention is how long attempts stay queryable.
const DefaultRetention = 72 * time.Hour

// Entry is one indexed attempt.
type Entry struct {
	ID string `json:"id"`
	deliverer.Attempt
}

// Index reads and writes the delivery log in Redis. Every key of one
// tenant shares the hash tag {dl:<tenant>}, so multi-key commands stay in
// one Cluster slot.
type Index struct {
	rdb       redis.UniversalClient
	retention time.Duration
	schedule  deliverer.Schedule
	now       func() time.Time
	// records, when set, reads an attempt's heavy fields back from
	// attemptsTopic (WithRecords).
	records       RecordReader
	attemptsTopic string
}

// IndexOption configures an Index.
type IndexOption func(*Index)

// WithSchedule sets the deliverers' retry schedule, from which a failed
// delivery's next attempt time is estimated (default
// deliverer.DefaultSchedule).
func WithSchedule(s deliverer.Schedule) IndexOption { return func(ix *Index) { ix.schedule = s } }

// NewIndex returns an Index keeping entries for retention (0: the default).
func NewIndex(rdb redis.UniversalClient, retention time.Duration, opts ...IndexOption) *Index {
	if retention <= 0 {
		retention = DefaultRetention
	}
	ix := &Index{rdb: rdb, retention: retention, schedule: deliverer.DefaultSchedule, now: time.Now}
	for _, o := range opts {
		o(ix)
	}
	return ix
}

// member orders entries by time, then by Kafka coordinates: fixed-width hex
// compares like the numbers, so a lexicographic range is a time range.
func member(at time.Time, partition int32, offset int64) string {
	return fmt.Sprintf("%012x%04x%012x", max(at.UnixMilli(), 0), uint16(partition), offset)
}

// memberTime is the lowest member at or after t.
func memberTime(t time.Time) string { return fmt.Sprintf("%012x", max(t.UnixMilli(), 0)) }

func tag(tenant string) string { return "dl:{" + tenant + "}:" }

// bucketSpan is the time one bucket hash covers. Attempts live as fields
// of hourly hashes rather than one key each: a key with its own TTL costs
// Redis about 100 bytes before its value, a hash field a fraction of that.
const bucketSpan = time.Hour

// bucketKey is the hash holding member m (its first 12 hex digits are the
// time in ms).
func bucketKey(tenant, m string) string {
	ms, _ := strconv.ParseInt(m[:12], 16, 64)
	return tag(tenant) + "b:" + strconv.FormatInt(ms/bucketSpan.Milliseconds(), 36)
}

// bucketExpiry is when the bucket holding at can go: when its newest
// possible attempt leaves the retention window.
func (ix *Index) bucketExpiry(at time.Time) time.Time {
	start := at.Truncate(bucketSpan)
	return start.Add(bucketSpan + ix.retention)
}

// expired tells whether member m is older than the retention window; its
// bucket may still hold it for up to bucketSpan.
func (ix *Index) expired(m string) bool {
	return m[:12] < memberTime(ix.now().Add(-ix.retention))
}
func endpointKey(tenant, endpoint string) string { return tag(tenant) + "ep:" + endpoint }
func eventKey(tenant, event string) string       { return tag(tenant) + "ev:" + event }

// AttemptID is the public id of the attempt at partition/offset.
func attemptID(m string) string { return "att_" + m }

// Located is an attempt with its coordinates in the attempts topic.
type Located struct {
	Partition int32
	Offset    int64
	deliverer.Attempt
}

// Add indexes a at Kafka partition/offset of the attempts topic. Entries
// older than the retention window are not indexed.
func (ix *Index) Add(ctx context.Context, partition int32, offset int64, a deliverer.Attempt) error {
	return ix.AddAll(ctx, []Located{{partition, offset, a}})
}

// AddAll indexes attempts in one round trip, as the indexer does a poll.
func (ix *Index) AddAll(ctx context.Context, as []Located) error {
	err := ix.pipelined(ctx, func(p redis.Pipeliner) {
		pl := ix.newPoll(nil)
		for i := range as {
			pl.add(ctx, p, as[i].Partition, as[i].Offset, &as[i].Attempt)
		}
		pl.flush(ctx, p)
	})
	if err != nil {
		return fmt.Errorf("deliverylog: add: %w", err)
	}
	return nil
}

// add adds the attempt to its tenant's script call.
func (pl *poll) add(ctx context.Context, p redis.Pipeliner, partition int32, offset int64, a *deliverer.Attempt) {
	ix := pl.ix
	expires := a.At.Add(ix.retention)
	if !expires.After(ix.now()) {
		return
	}
	if a.Outcome == deliverer.OutcomeDelivering {
		// Not an attempt: its delivery's status (eventOf).
		evd := eventDeliveriesKey(a.Tenant, a.EventID)
		p.HSet(ctx, evd, "fly:"+a.EndpointID, strconv.Itoa(a.Attempt))
		later(pl.expires, evd, expires)
		return
	}
	m := member(a.At, partition, offset)
	epKey, evKey, evd := endpointKey(a.Tenant, a.EndpointID), eventKey(a.Tenant, a.EventID), eventDeliveriesKey(a.Tenant, a.EventID)
	st, es, bk := statKey(a.Tenant, a.EndpointID, a.At), stateKey(a.Tenant, a.EndpointID), bucketKey(a.Tenant, m)
	summary := encodeSummary(a)
	pl.buckets[bk] = append(pl.buckets[bk], m, summary)
	pl.lists[evKey] = append(pl.lists[evKey], redis.Z{Member: m})
	c := pl.call(ctx, p, a.Tenant)
	c.args = append(c.args, c.key(epKey), c.key(st), c.key(es), c.key(evd),
		m, a.Outcome, latencyBucket(a.LatencyMS), a.At.UnixMilli(),
		"last:"+a.EndpointID, lastRank(a.At, a.Attempt), ix.lastValue(a).encode())
	c.n++
	later(pl.trims, epKey, expires)
	later(pl.trims, evKey, expires)
	for _, k := range []string{st, es, evd} {
		later(pl.expires, k, expires)
	}
	later(pl.expires, bk, ix.bucketExpiry(a.At))
	if a.EventType != "" {
		pl.types[evd] = a.EventType
	}
}

// Attempt returns the tenant's attempt id.
func (ix *Index) Attempt(ctx context.Context, tenant, id string) (Entry, error) {
	m, ok := strings.CutPrefix(id, "att_")
	if !ok || len(m) != 28 || ix.expired(m) {
		return Entry{}, ErrNotFound
	}
	v, err := ix.rdb.HGet(ctx, bucketKey(tenant, m), m).Result()
	if errors.Is(err, redis.Nil) {
		return Entry{}, ErrNotFound
	}
	if err != nil {
		return Entry{}, fmt.Errorf("deliverylog: get: %w", err)
	}
	e := Entry{ID: id}
	if err := decodeSummary(tenant, v, &e.Attempt); err != nil {
		return Entry{}, fmt.Errorf("deliverylog: entry %s: %w", id, err)
	}
	if ix.records != nil {
		if err := ix.full(ctx, m, &e); err != nil {
			return Entry{}, err
		}
	}
	return e, nil
}

// Filter selects attempts; zero fields match everything.
type Filter struct {
	Outcome    string
	StatusCode int
	CodeClass  int // 2, 4 or 5 for 2xx, 4xx, 5xx
	ErrorClass string
	Type       string
	EventID    string
	Trigger    string
	Since      time.Time
	Until      time.Time
}

func (f Filter) match(e *Entry) bool {
	switch {
	case f.Outcome != "" && e.Outcome != f.Outcome,
		f.StatusCode != 0 && e.Status != f.StatusCode,
		f.CodeClass != 0 && e.Status/100 != f.CodeClass,
		f.ErrorClass != "" && e.ErrorClass != f.ErrorClass,
		f.Type != "" && e.EventType != f.Type,
		f.EventID != "" && e.EventID != f.EventID,
		f.Trigger != "" && e.Trigger != f.Trigger:
		return false
	}
	return true
}

// Query asks for one page.
type Query struct {
	Filter
	Limit  int    // default 50, at most 250
	Cursor string // from a Page's Next or Prev; "" = newest
}

// Page is one page of entries, newest first. Next pages to older entries,
// Prev to newer ones; "" when there are none (yet). Since/Until is the
// window the page covered: the filter's, bounded by retention.
type Page struct {
	Data  []Entry
	Next  string
	Prev  string
	Since time.Time
	Until time.Time
}

// EndpointAttempts pages the attempts of the tenant's endpoint.
func (ix *Index) EndpointAttempts(ctx context.Context, tenant, endpointID string, q Query) (Page, error) {
	return ix.page(ctx, tenant, endpointKey(tenant, endpointID), "ep:"+endpointID, q)
}

// EventAttempts pages the attempts of the tenant's event, all endpoints.
func (ix *Index) EventAttempts(ctx context.Context, tenant, eventID string, q Query) (Page, error) {
	return ix.page(ctx, tenant, eventKey(tenant, eventID), "ev:"+eventID, q)
}

// cursor binds a position to a tenant and list, so that a cursor used
// elsewhere is not found rather than paging someone else's list.
func cursor(tenant, scope string, older bool, m string) string {
	dir := "p"
	if older {
		dir = "n"
	}
	return base64.RawURLEncoding.EncodeToString([]byte(dir + "|" + m + "|" + scope + "|" + tenant))
}

func parseCursor(c, tenant, scope string) (older bool, m string, err error) {
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return false, "", ErrBadCursor
	}
	parts := strings.SplitN(string(b), "|", 4)
	if len(parts) != 4 || len(parts[1]) < 28 || parts[0] != "n" && parts[0] != "p" {
		return false, "", ErrBadCursor
	}
	if parts[2] != scope || parts[3] != tenant {
		return false, "", ErrNotFound
	}
	return parts[0] == "n", parts[1], nil
}

// scanBatch is how many members one round trip looks at while filtering.
const scanBatch = 500

func (ix *Index) page(ctx context.Context, tenant, key, scope string, q Query) (Page, error) {
	b, err := ix.bounds(tenant, scope, q.Limit, q.Since, q.Until, q.Cursor)
	if err != nil {
		return Page{}, err
	}
	limit, lo, hi, older := b.limit, b.lo, b.hi, b.older
	pg := Page{Since: b.since, Until: b.until}
	var got []Entry
	more := false
	// The first round reads one more than a page, which is all an
	// unfiltered page needs; a filter that skips entries widens later
	// rounds up to scanBatch.
	batch := int64(limit + 1)
	for len(got) <= limit {
		ms, err := ix.rangeLex(ctx, key, lo, hi, older, batch)
		if err != nil {
			return Page{}, err
		}
		if len(ms) == 0 {
			break
		}
		es, err := ix.entries(ctx, tenant, ms)
		if err != nil {
			return Page{}, err
		}
		for i := range es {
			if len(got) == limit {
				more = true
				break
			}
			if es[i].ID != "" && q.match(&es[i]) {
				got = append(got, es[i])
			}
		}
		if more || int64(len(ms)) < batch {
			break
		}
		batch = min(4*batch, scanBatch)
		if older {
			hi = "(" + ms[len(ms)-1]
		} else {
			lo = "(" + ms[len(ms)-1]
		}
	}
	if !older {
		// Read oldest first to page newer; shown newest first all the same.
		for i, j := 0, len(got)-1; i < j; i, j = i+1, j-1 {
			got[i], got[j] = got[j], got[i]
		}
	}
	pg.Data = got
	switch {
	case len(got) > 0:
		// Newer entries may always arrive, so Prev is always there; Next
		// only when older ones are left (or, paging newer, were passed).
		pg.Prev = cursor(tenant, scope, false, got[0].ID[4:])
		if more || !older {
			pg.Next = cursor(tenant, scope, true, got[len(got)-1].ID[4:])
		}
	case !older:
		pg.Prev = q.Cursor // nothing newer yet: poll again from there
	}
	return pg, nil
}

// entries loads members; an expired one comes back with an empty ID.
// Members of one bucket are read with one HMGET, all in one round trip.
func (ix *Index) entries(ctx context.Context, tenant string, ms []string) ([]Entry, error) {
	type read struct {
		idx    []int
		fields []string
		cmd    *redis.SliceCmd
	}
	byKey := map[string]*read{}
	for i, m := range ms {
		if len(m) < 28 || ix.expired(m) {
			continue
		}
		k := bucketKey(tenant, m)
		r := byKey[k]
		if r == nil {
			r = &read{}
			byKey[k] = r
		}
		r.idx = append(r.idx, i)
		r.fields = append(r.fields, m)
	}
	out := make([]Entry, len(ms))
	if len(byKey) == 0 {
		return out, nil
	}
	_, err := ix.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for k, r := range byKey {
			r.cmd = p.HMGet(ctx, k, r.fields...)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("deliverylog: hmget: %w", err)
	}
	for _, r := range byKey {
		for j, v := range r.cmd.Val() {
			s, ok := v.(string)
			if !ok {
				continue
			}
			i := r.idx[j]
			if err := decodeSummary(tenant, s, &out[i].Attempt); err != nil {
				return nil, fmt.Errorf("deliverylog: entry %s: %w", ms[i], err)
			}
			out[i].ID = attemptID(ms[i])
		}
	}
	return out, nil
}

// pageBounds is the window one page of a sorted set reads.
type pageBounds struct {
	limit        int
	since, until time.Time
	// lo and hi bound the members, which run oldest to newest: [lo, hi).
	lo, hi string
	// older pages back in time (the default); false pages forward.
	older bool
}

// bounds clamps a query's limit and window to what the index holds and
// applies its cursor; attempt and event pages share it.
func (ix *Index) bounds(tenant, scope string, limit int, since, until time.Time, cursor string) (pageBounds, error) {
	if limit <= 0 {
		limit = 50
	}
	now := ix.now()
	b := pageBounds{limit: min(limit, 250), since: now.Add(-ix.retention), until: now, older: true}
	if !since.IsZero() && since.After(b.since) {
		b.since = since
	}
	if !until.IsZero() && until.Before(b.until) {
		b.until = until
	}
	b.lo, b.hi = "["+memberTime(b.since), "("+memberTime(b.until.Add(time.Millisecond))
	if until.IsZero() {
		// Unbounded above: an attempt stamped by a host whose clock runs
		// a little ahead is still listed.
		b.hi = "+"
	}
	if cursor != "" {
		older, m, err := parseCursor(cursor, tenant, scope)
		if err != nil {
			return pageBounds{}, err
		}
		b.older = older
		if older {
			b.hi = "(" + m
		} else {
			b.lo = "(" + m
		}
	}
	return b, nil
}

// rangeLex reads up to count members of key in [lo, hi): newest first when
// older, else oldest first.
func (ix *Index) rangeLex(ctx context.Context, key, lo, hi string, older bool, count int64) ([]string, error) {
	by := &redis.ZRangeBy{Min: lo, Max: hi, Count: count}
	var ms []string
	var err error
	if older {
		ms, err = ix.rdb.ZRevRangeByLex(ctx, key, by).Result()
	} else {
		ms, err = ix.rdb.ZRangeByLex(ctx, key, by).Result()
	}
	if err != nil {
		return nil, fmt.Errorf("deliverylog: range: %w", err)
	}
	return ms, nil
}
