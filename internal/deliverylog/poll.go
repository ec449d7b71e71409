package deliverylog

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// maxScriptAttempts bounds one attemptsScript call, so that Redis is not
// held by one script for long.
const maxScriptAttempts = 500

// poll gathers one poll's index writes that can be made once per poll
// rather than once per record: attempts go to Redis in one script call per
// tenant (up to maxScriptAttempts), and each key's trim, expiry and event
// type are written once, after everything that may create the key.
type poll struct {
	ix *Index
	// pending are the poll's attempts by tenant, in offset order.
	pending map[string][]pendingAttempt
	// states are the endpoint states known: the run's (housekeeping), or
	// the poll's own. next are the states the poll's script calls lead
	// to, by tenant, until they succeed; sent are the calls.
	states map[string]*epState
	next   map[string]map[string]*epState
	sent   []sentCall
	call   *scriptCall // reused from call to call
	args   []any       // the call's arguments, reused likewise
	buf    []byte
	// trims are sorted sets to trim to the retention window, with the
	// latest expiry they need; expires are other keys' latest expiry.
	trims, expires map[string]time.Time
	// streams are the attempt streams the poll wrote, to trim.
	streams map[string]struct{}
	// types are event types to set once on event hashes (key → type).
	types map[string]string
	// done, when set, remembers housekeeping already done in Redis.
	done *housekeeping
	// keys are endpoints' key names, made once rather than for every
	// record (bounded like housekeeping).
	keys map[endpointRef]*endpointKeys
}

type endpointRef struct{ tenant, endpoint string }

// endpointKeys are the names of an endpoint's keys and fields.
type endpointKeys struct {
	stream, state, events string // keys: attempts stream, state, event list
	field, matched        string // fields of an event's hash: delivery, match
	fieldArg              any    // field as a script argument, made once
	// The minute counters' key of the latest minute asked for.
	statMinute int64
	stat       string
}

// keysOf returns the endpoint's key names. tenant and endpoint may point
// into a record: what is kept is copied.
func (pl *poll) keysOf(tenant, endpoint string) *endpointKeys {
	if k := pl.keys[endpointRef{tenant, endpoint}]; k != nil {
		return k
	}
	if len(pl.keys) >= housekeepingKeys {
		clear(pl.keys)
	}
	tenant, endpoint = strings.Clone(tenant), strings.Clone(endpoint)
	k := &endpointKeys{stream: endpointKey(tenant, endpoint), state: stateKey(tenant, endpoint),
		events: endpointEventsKey(tenant, endpoint), field: "a:" + endpoint, matched: "ep:" + endpoint, statMinute: -1}
	k.fieldArg = k.field
	pl.keys[endpointRef{tenant, endpoint}] = k
	return k
}

// minute returns the endpoint's counters key for the minute of at.
func (k *endpointKeys) minute(tenant, endpoint string, at time.Time) string {
	if m := at.Unix() / 60; m != k.statMinute {
		k.statMinute, k.stat = m, statKey(tenant, endpoint, at)
	}
	return k.stat
}

func (ix *Index) newPoll(done *housekeeping) *poll {
	pl := &poll{ix: ix, pending: map[string][]pendingAttempt{}, next: map[string]map[string]*epState{},
		call: newScriptCall(), keys: map[endpointRef]*endpointKeys{}, trims: map[string]time.Time{}, streams: map[string]struct{}{}, expires: map[string]time.Time{}, types: map[string]string{}}
	pl.reset(done)
	return pl
}

// reset empties pl for the next poll, keeping its maps' room: growing
// them again every poll was a tenth of the indexer's allocations.
func (pl *poll) reset(done *housekeeping) {
	if len(pl.pending) > maxKeptTenants {
		clear(pl.pending)
	}
	for t, as := range pl.pending {
		pl.pending[t] = as[:0]
	}
	clear(pl.next)
	pl.sent = pl.sent[:0]
	if done != nil {
		pl.states = done.states
	} else if pl.done != nil || pl.states == nil {
		pl.states = map[string]*epState{}
	}
	clear(pl.trims)
	clear(pl.streams)
	clear(pl.expires)
	clear(pl.types)
	pl.done = done
}

// maxKeptTenants bounds the tenants whose attempt lists a poll keeps for
// the next.
const maxKeptTenants = 1000

// Housekeeping (moving a key's expiry on, trimming a list to the window)
// need not follow every write: reads skip entries past retention, so a
// key may outlive its last entry by a little. Expiries are rounded up to
// expiryStep and written when the rounded time moves; a list is trimmed at
// most once per trimEvery. Otherwise a poll touching a thousand endpoints
// sent about six housekeeping commands per endpoint, more than it sent for
// their attempts.
const (
	expiryStep = 5 * time.Minute
	trimEvery  = time.Minute
	// housekeepingKeys bounds what is remembered; past it, it is
	// forgotten and written again.
	housekeepingKeys = 100_000
)

// housekeeping is what an indexer run has done: each key's expiry as
// written and when each list was trimmed. It lives as long as one run, so
// that a Redis flush (a new run) starts it empty.
type housekeeping struct {
	expiry  map[string]time.Time
	trimmed map[string]time.Time
	// states are the endpoint states as the run wrote them (write.go).
	states map[string]*epState
	// typed are event hashes whose type the run wrote.
	typed map[string]struct{}
}

func newHousekeeping() *housekeeping {
	return &housekeeping{expiry: map[string]time.Time{}, trimmed: map[string]time.Time{}, states: map[string]*epState{},
		typed: map[string]struct{}{}}
}

// hasType tells whether event hash k's type was written in this run: an
// attempt then need not write it again. An event's attempts span polls:
// in bench (a), HSETNX per attempt went from 1.23 to 1.05.
func (h *housekeeping) hasType(k string) bool {
	if h == nil {
		return false
	}
	_, ok := h.typed[k]
	return ok
}

// typeWritten notes event hash k's type as written.
func (h *housekeeping) typeWritten(k string) {
	if h == nil {
		return
	}
	if len(h.typed) >= housekeepingKeys {
		clear(h.typed)
	}
	h.typed[k] = struct{}{}
}

// expire tells whether k's expiry must be written as at (rounded up), and
// notes it as written.
func (h *housekeeping) expire(k string, at time.Time) (time.Time, bool) {
	at = at.Add(expiryStep - 1).Truncate(expiryStep)
	if h == nil {
		return at, true
	}
	if h.expiry[k].Equal(at) {
		return at, false
	}
	if len(h.expiry) >= housekeepingKeys {
		clear(h.expiry)
	}
	h.expiry[k] = at
	return at, true
}

// trim tells whether list k is due a trim, and notes it as trimmed.
func (h *housekeeping) trim(k string, now time.Time) bool {
	if h == nil {
		return true
	}
	if now.Sub(h.trimmed[k]) < trimEvery {
		return false
	}
	if len(h.trimmed) >= housekeepingKeys {
		clear(h.trimmed)
	}
	h.trimmed[k] = now
	return true
}

func later(m map[string]time.Time, k string, t time.Time) {
	if t.After(m[k]) {
		m[k] = t
	}
}

// flush queues the poll's writes on p: the attempt scripts and the
// writes that need no script first, then types, trims and expiries, which
// must follow the writes that create their keys. It reads the states of
// endpoints it does not know first. After p has run, settle takes the
// scripts' outcome.
func (pl *poll) flush(ctx context.Context, p redis.Pipeliner) error {
	pl.sent = pl.sent[:0]
	clear(pl.next)
	if err := pl.load(ctx, pl.pending); err != nil {
		return err
	}
	for tenant, as := range pl.pending {
		if len(as) > 0 {
			pl.queueAttempts(ctx, p, tenant, as)
		}
	}
	for k, t := range pl.types {
		p.HSetNX(ctx, k, "type", t)
		pl.done.typeWritten(k)
	}
	now := pl.ix.now()
	oldest := "(" + memberTime(now.Add(-pl.ix.retention))
	for k, t := range pl.trims {
		if pl.done.trim(k, now) {
			p.ZRemRangeByLex(ctx, k, "-", oldest)
		}
		later(pl.expires, k, t)
	}
	// Streams are trimmed here, not by each XADD: MINID on every XADD
	// cost Redis about half a microsecond of its 4.7-5.2 per attempt
	// (BenchmarkIndexMemory). "~" drops whole stream nodes only.
	minID := strconv.FormatInt(max(now.Add(-pl.ix.retention).UnixMilli(), 0), 10)
	for k := range pl.streams {
		if pl.done.trim(k, now) {
			p.XTrimMinIDApprox(ctx, k, minID, 0)
		}
	}
	for k, t := range pl.expires {
		if at, ok := pl.done.expire(k, t); ok {
			p.PExpireAt(ctx, k, at)
		}
	}
	return nil
}
