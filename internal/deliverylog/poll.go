package deliverylog

import (
	"context"
	"strconv"
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
	// attempts by tenant: the script's keys (deduplicated) and arguments.
	attempts map[string]*scriptCall
	// trims are sorted sets to trim to the retention window, with the
	// latest expiry they need; expires are other keys' latest expiry.
	trims, expires map[string]time.Time
	// types are event types to set once on event hashes (key → type).
	types map[string]string
	// done, when set, remembers housekeeping already done in Redis.
	done *housekeeping
}

func (ix *Index) newPoll(done *housekeeping) *poll {
	return &poll{ix: ix, attempts: map[string]*scriptCall{}, trims: map[string]time.Time{},
		expires: map[string]time.Time{}, types: map[string]string{}, done: done}
}

// reset empties pl for the next poll, keeping its maps' room: growing
// them again every poll was a tenth of the indexer's allocations.
func (pl *poll) reset(done *housekeeping) {
	if len(pl.attempts) > maxKeptCalls {
		clear(pl.attempts)
	}
	clear(pl.trims)
	clear(pl.expires)
	clear(pl.types)
	pl.done = done
}

// maxKeptCalls bounds the tenants whose script calls a poll keeps for the
// next.
const maxKeptCalls = 1000

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
}

func newHousekeeping() *housekeeping {
	return &housekeeping{expiry: map[string]time.Time{}, trimmed: map[string]time.Time{}}
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

// scriptCall is one tenant's attemptsScript call under construction.
type scriptCall struct {
	keys  []string
	index map[string]int // key → its 1-based position in keys
	args  []any          // args[0] is set by eval
	n     int
}

func (c *scriptCall) key(k string) string {
	i, ok := c.index[k]
	if !ok {
		c.keys = append(c.keys, k)
		i = len(c.keys)
		c.index[k] = i
	}
	return strconv.Itoa(i)
}

func later(m map[string]time.Time, k string, t time.Time) {
	if t.After(m[k]) {
		m[k] = t
	}
}

// flush queues the poll's writes on p: the attempt scripts and the
// writes that need no script first, then types, trims and expiries, which
// must follow the writes that create their keys.
func (pl *poll) flush(ctx context.Context, p redis.Pipeliner) {
	for _, c := range pl.attempts {
		if c.n > 0 {
			pl.eval(ctx, p, c)
		}
	}
	for k, t := range pl.types {
		p.HSetNX(ctx, k, "type", t)
	}
	now := pl.ix.now()
	oldest := "(" + memberTime(now.Add(-pl.ix.retention))
	for k, t := range pl.trims {
		if pl.done.trim(k, now) {
			p.ZRemRangeByLex(ctx, k, "-", oldest)
		}
		later(pl.expires, k, t)
	}
	for k, t := range pl.expires {
		if at, ok := pl.done.expire(k, t); ok {
			p.PExpireAt(ctx, k, at)
		}
	}
}

// call returns the tenant's script call with room for one more attempt,
// queueing a full one on p.
func (pl *poll) call(ctx context.Context, p redis.Pipeliner, tenant string) *scriptCall {
	c := pl.attempts[tenant]
	if c != nil && c.n == maxScriptAttempts {
		pl.eval(ctx, p, c)
	}
	if c == nil {
		c = &scriptCall{index: map[string]int{}}
		pl.attempts[tenant] = c
	}
	return c
}

// eval queues c on p and empties c for more attempts (the command holds
// copies of its keys and arguments). Its first argument is the oldest
// stream id to keep: XADD trims whole stream nodes older than the
// retention window as it goes, so streams need no trim of their own.
func (pl *poll) eval(ctx context.Context, p redis.Pipeliner, c *scriptCall) {
	c.args[0] = max(pl.ix.now().Add(-pl.ix.retention).UnixMilli(), 0)
	attemptsScript.EvalSha(ctx, p, c.keys, c.args...)
	c.keys, c.args, c.n = c.keys[:0], c.args[:0], 0
	clear(c.index)
}
