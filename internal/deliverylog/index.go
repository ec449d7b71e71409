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
	"sort"
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

// tag prefixes every key of the tenant's index. "v2" is the stream
// layout: an index written before it ("dl:{tenant}:") is not read, and
// ages out by its TTLs while the indexer rebuilds under the new prefix,
// which the documented ACL pattern ~dl:* still covers.
func tag(tenant string) string { return "dl:v2:{" + tenant + "}:" }

// endpointKey is the endpoint's stream of attempt summaries.
func endpointKey(tenant, endpoint string) string { return tag(tenant) + "eps:" + endpoint }

// ref names one indexed attempt: its endpoint and its entry's id in the
// endpoint's stream ("<ms>-<seq>").
type ref struct{ ep, id string }

// attemptID is the public id of the attempt at r: opaque, but naming its
// endpoint, so that one attempt is read with one command.
func (r ref) attemptID() string {
	return "att_" + base64.RawURLEncoding.EncodeToString([]byte(r.id+"."+r.ep))
}

func parseAttemptID(id string) (ref, bool) {
	s, ok := strings.CutPrefix(id, "att_")
	if !ok {
		return ref{}, false
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return ref{}, false
	}
	sid, ep, ok := strings.Cut(string(b), ".")
	if !ok || ep == "" || !validID(sid) {
		return ref{}, false
	}
	return ref{ep: ep, id: sid}, true
}

// validID tells whether s is a stream id "<ms>-<seq>".
func validID(s string) bool {
	_, _, ok := parseID(s)
	return ok
}

func parseID(s string) (ms, seq uint64, ok bool) {
	a, b, ok := strings.Cut(s, "-")
	if !ok {
		return 0, 0, false
	}
	ms, err1 := strconv.ParseUint(a, 10, 64)
	seq, err2 := strconv.ParseUint(b, 10, 64)
	return ms, seq, err1 == nil && err2 == nil
}

// streamBound tells whether b is a stream range bound: "-", "+", or an
// entry id ("<ms>" or "<ms>-<seq>"), exclusive with a leading "(".
func streamBound(b string) bool {
	if b == "-" || b == "+" {
		return true
	}
	b = strings.TrimPrefix(b, "(")
	if _, _, ok := parseID(b); ok {
		return true
	}
	_, err := strconv.ParseUint(b, 10, 64)
	return err == nil
}

// parseRef reads a ref as the delivery field keeps it (hex, no "-0").
func parseRef(ep, s string) (ref, bool) {
	a, b, ok := strings.Cut(s, "-")
	if !ok {
		b = "0"
	}
	ms, err1 := strconv.ParseUint(a, 16, 64)
	seq, err2 := strconv.ParseUint(b, 16, 64)
	if err1 != nil || err2 != nil {
		return ref{}, false
	}
	return ref{ep: ep, id: strconv.FormatUint(ms, 10) + "-" + strconv.FormatUint(seq, 10)}, true
}

// expiredID tells whether stream id id is older than the retention window.
func (ix *Index) expiredID(id string) bool {
	ms, _, _ := parseID(id)
	return int64(ms) < ix.now().Add(-ix.retention).UnixMilli()
}

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
	return ix.addAll(ctx, nil, as)
}

// addAll indexes attempts as a poll of the indexer run done (nil: a poll
// of its own, knowing no endpoint state).
func (ix *Index) addAll(ctx context.Context, done *housekeeping, as []Located) error {
	pl := ix.newPoll(done)
	err := ix.pipelined(ctx, func(p redis.Pipeliner) error {
		pl.reset(done)
		for i := range as {
			pl.add(ctx, p, as[i].Partition, as[i].Offset, &as[i].Attempt)
		}
		return pl.flush(ctx, p)
	})
	if err == nil {
		err = pl.settle(ctx)
	}
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
	evd := eventDeliveriesKey(a.Tenant, a.EventID)
	if a.Outcome == deliverer.OutcomeDelivering {
		// Not an attempt: its delivery's status (eventOf).
		p.HSet(ctx, evd, "fly:"+a.EndpointID, strconv.Itoa(a.Attempt))
		later(pl.expires, evd, expires)
		return
	}
	k := pl.keysOf(a.Tenant, a.EndpointID)
	pl.buf = lastValue(a).append(pl.buf[:0])
	last := string(pl.buf)
	pl.buf = appendSummary(pl.buf[:0], a, partition, offset)
	pa := pendingAttempt{ep: k.stream, st: k.minute(a.Tenant, a.EndpointID, a.At), es: k.state, evd: evd,
		part: partition, off: offset, at: a.At.UnixMilli(), outcome: a.Outcome, bucket: latencyBucket(a.LatencyMS),
		field: k.fieldArg, last: last, value: string(pl.buf), expires: expires}
	pl.pending[a.Tenant] = append(pl.pending[a.Tenant], pa)
	pl.streams[pa.ep] = struct{}{}
	for _, k := range []string{pa.ep, pa.st, pa.es, pa.evd} {
		later(pl.expires, k, expires)
	}
	if a.EventType != "" && !pl.done.hasType(evd) {
		pl.types[evd] = a.EventType
	}
}

// Attempt returns the tenant's attempt id.
func (ix *Index) Attempt(ctx context.Context, tenant, id string) (Entry, error) {
	r, ok := parseAttemptID(id)
	if !ok || ix.expiredID(r.id) {
		return Entry{}, ErrNotFound
	}
	es, err := ix.entries(ctx, tenant, []ref{r})
	if err != nil {
		return Entry{}, err
	}
	if es[0].ID == "" {
		return Entry{}, ErrNotFound
	}
	e := es[0].Entry
	if ix.records != nil {
		if err := ix.full(ctx, es[0].partition, es[0].offset, &e); err != nil {
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
	key := endpointKey(tenant, endpointID)
	return ix.page(ctx, tenant, "ep:"+endpointID, true, q, func(lo, hi string, older bool, count int64) ([]located, error) {
		return ix.rangeStream(ctx, tenant, endpointID, key, lo, hi, older, count)
	})
}

// EventAttempts pages the attempts of the tenant's event, all endpoints.
// They are the refs of its deliveries' fields, read with the event's hash
// and ordered in memory: an event has as many attempts as its deliveries
// made, not an endpoint's worth.
func (ix *Index) EventAttempts(ctx context.Context, tenant, eventID string, q Query) (Page, error) {
	var refs []eventRef
	loaded := false
	return ix.page(ctx, tenant, "ev:"+eventID, false, q, func(lo, hi string, older bool, count int64) ([]located, error) {
		if !loaded {
			h, err := ix.rdb.HGetAll(ctx, eventDeliveriesKey(tenant, eventID)).Result()
			if err != nil {
				return nil, fmt.Errorf("deliverylog: event: %w", err)
			}
			refs, loaded = eventRefs(h), true
		}
		var pick []ref
		for i := range refs {
			r := refs[i]
			if older {
				r = refs[len(refs)-1-i] // newest first
			}
			if len(pick) == int(count) {
				break
			}
			if inRange(r.pos, lo, hi) {
				pick = append(pick, r.ref)
			}
		}
		es, err := ix.entries(ctx, tenant, pick)
		if err != nil {
			return nil, err
		}
		for i := range es {
			es[i].pos = posOf(pick[i])
		}
		return es, nil
	})
}

// eventRef is a ref with its place in the event's order: by time, then
// by endpoint and id.
type eventRef struct {
	ref
	pos string
}

// posOf orders refs across endpoints: time and sequence in fixed-width
// hex, then the endpoint, so that positions compare as strings.
func posOf(r ref) string {
	ms, seq, _ := parseID(r.id)
	return fmt.Sprintf("%012x%08x", ms, seq) + r.ep
}

// eventRefs are the refs of an event's hash, oldest first.
func eventRefs(h map[string]string) []eventRef {
	var out []eventRef
	for f, v := range h {
		ep, ok := strings.CutPrefix(f, "a:")
		if !ok {
			continue
		}
		_, rs, _ := parseDelivery(ep, v)
		for _, r := range rs {
			out = append(out, eventRef{r, posOf(r)})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].pos < out[j].pos })
	return out
}

// inRange tells whether position p is within [lo, hi) as bounds states
// them for positions: "[x" or "(x" below, "(x" or "+" above.
func inRange(p, lo, hi string) bool {
	switch {
	case strings.HasPrefix(lo, "[") && p < lo[1:], strings.HasPrefix(lo, "(") && p <= lo[1:]:
		return false
	case hi == "+":
		return true
	case strings.HasPrefix(hi, "(") && p >= hi[1:], strings.HasPrefix(hi, "[") && p > hi[1:]:
		return false
	}
	return true
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
	if len(parts) != 4 || parts[1] == "" || parts[0] != "n" && parts[0] != "p" {
		return false, "", ErrBadCursor
	}
	if parts[2] != scope || parts[3] != tenant {
		return false, "", ErrNotFound
	}
	return parts[0] == "n", parts[1], nil
}

// scanBatch is how many entries one round trip looks at while filtering.
const scanBatch = 500

// located is an entry with its position in its list (what a cursor
// holds) and its coordinates in the attempts topic.
type located struct {
	Entry
	pos       string
	partition int32
	offset    int64
}

// rangeFunc reads up to count entries of a list within [lo, hi) (bounds
// in the list's positions): newest first when older, else oldest first.
type rangeFunc func(lo, hi string, older bool, count int64) ([]located, error)

// page reads one page of a list through read, whose positions are stream
// ids when stream is set, else posOf's.
func (ix *Index) page(ctx context.Context, tenant, scope string, stream bool, q Query, read rangeFunc) (Page, error) {
	b, err := ix.bounds(tenant, scope, q.Limit, q.Since, q.Until, q.Cursor)
	if err != nil {
		return Page{}, err
	}
	lo, hi := b.lo, b.hi
	if stream {
		lo, hi = b.streamLo, b.streamHi
	}
	limit, older := b.limit, b.older
	pg := Page{Since: b.since, Until: b.until}
	var got []located
	more := false
	// The first round reads one more than a page, which is all an
	// unfiltered page needs; a filter that skips entries widens later
	// rounds up to scanBatch.
	batch := int64(limit + 1)
	for len(got) <= limit {
		es, err := read(lo, hi, older, batch)
		if err != nil {
			return Page{}, err
		}
		if len(es) == 0 {
			break
		}
		for i := range es {
			if len(got) == limit {
				more = true
				break
			}
			if es[i].ID != "" && !es[i].At.Before(b.since) && q.match(&es[i].Entry) {
				got = append(got, es[i])
			}
		}
		if more || int64(len(es)) < batch {
			break
		}
		batch = min(4*batch, scanBatch)
		if older {
			hi = "(" + es[len(es)-1].pos
		} else {
			lo = "(" + es[len(es)-1].pos
		}
	}
	if !older {
		// Read oldest first to page newer; shown newest first all the same.
		for i, j := 0, len(got)-1; i < j; i, j = i+1, j-1 {
			got[i], got[j] = got[j], got[i]
		}
	}
	pg.Data = make([]Entry, len(got))
	for i := range got {
		pg.Data[i] = got[i].Entry
	}
	switch {
	case len(got) > 0:
		// Newer entries may always arrive, so Prev is always there; Next
		// only when older ones are left (or, paging newer, were passed).
		pg.Prev = cursor(tenant, scope, false, got[0].pos)
		if more || !older {
			pg.Next = cursor(tenant, scope, true, got[len(got)-1].pos)
		}
	case !older:
		pg.Prev = q.Cursor // nothing newer yet: poll again from there
	}
	return pg, nil
}

// rangeStream reads entries of an endpoint's stream within stream-id
// bounds.
func (ix *Index) rangeStream(ctx context.Context, tenant, ep, key, lo, hi string, older bool, count int64) ([]located, error) {
	// A cursor's position is any string to a lexical list; to a stream
	// it must be an entry id, or Redis refuses the range.
	if !streamBound(lo) || !streamBound(hi) {
		return nil, ErrBadCursor
	}
	var xs []redis.XMessage
	var err error
	if older {
		xs, err = ix.rdb.XRevRangeN(ctx, key, hi, lo, count).Result()
	} else {
		xs, err = ix.rdb.XRangeN(ctx, key, lo, hi, count).Result()
	}
	if err != nil {
		return nil, fmt.Errorf("deliverylog: range: %w", err)
	}
	out := make([]located, len(xs))
	for i, x := range xs {
		if err := ix.decode(tenant, ep, x, &out[i]); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// decode reads stream entry x of the tenant's endpoint into l; an entry
// past the retention window is left with an empty ID.
func (ix *Index) decode(tenant, ep string, x redis.XMessage, l *located) error {
	l.pos = x.ID
	if ix.expiredID(x.ID) {
		return nil
	}
	p, off, err := decodeSummary(tenant, ep, x, &l.Attempt)
	if err != nil {
		return fmt.Errorf("deliverylog: entry %s of %s: %w", x.ID, ep, err)
	}
	l.ID, l.partition, l.offset = ref{ep: ep, id: x.ID}.attemptID(), p, off
	return nil
}

// entries reads refs in one round trip; one not found (or expired) comes
// back with an empty ID.
func (ix *Index) entries(ctx context.Context, tenant string, refs []ref) ([]located, error) {
	cmds := make([]*redis.XMessageSliceCmd, len(refs))
	_, err := ix.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, r := range refs {
			cmds[i] = p.XRangeN(ctx, endpointKey(tenant, r.ep), r.id, r.id, 1)
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("deliverylog: read: %w", err)
	}
	out := make([]located, len(refs))
	for i, c := range cmds {
		xs := c.Val()
		if len(xs) == 0 || xs[0].ID != refs[i].id {
			continue
		}
		if err := ix.decode(tenant, refs[i].ep, xs[0], &out[i]); err != nil {
			return nil, err
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
	// streamLo and streamHi are the same window in stream ids.
	streamLo, streamHi string
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
	b.streamLo, b.streamHi = strconv.FormatInt(max(b.since.UnixMilli(), 0), 10), strconv.FormatInt(max(b.until.UnixMilli(), 0), 10)
	if until.IsZero() {
		// Unbounded above: an attempt stamped by a host whose clock runs
		// a little ahead is still listed.
		b.hi, b.streamHi = "+", "+"
	}
	if cursor != "" {
		older, m, err := parseCursor(cursor, tenant, scope)
		if err != nil {
			return pageBounds{}, err
		}
		b.older = older
		if older {
			b.hi, b.streamHi = "("+m, "("+m
		} else {
			b.lo, b.streamLo = "("+m, "("+m
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
