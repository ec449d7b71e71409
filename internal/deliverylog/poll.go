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
}

func (ix *Index) newPoll() *poll {
	return &poll{ix: ix, attempts: map[string]*scriptCall{}, trims: map[string]time.Time{},
		expires: map[string]time.Time{}, types: map[string]string{}}
}

// scriptCall is one tenant's attemptsScript call under construction.
type scriptCall struct {
	keys  []string
	index map[string]int // key → its 1-based position in keys
	args  []any
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

// flush queues the poll's writes on p: the attempt scripts first, then
// types, trims and expiries, which must follow the writes that create
// their keys.
func (pl *poll) flush(ctx context.Context, p redis.Pipeliner) {
	for tenant, c := range pl.attempts {
		if c.n > 0 {
			attemptsScript.EvalSha(ctx, p, c.keys, c.args...)
		}
		delete(pl.attempts, tenant)
	}
	for k, t := range pl.types {
		p.HSetNX(ctx, k, "type", t)
	}
	oldest := "(" + memberTime(pl.ix.now().Add(-pl.ix.retention))
	for k, t := range pl.trims {
		p.ZRemRangeByLex(ctx, k, "-", oldest)
		p.PExpireAt(ctx, k, t)
	}
	for k, t := range pl.expires {
		p.PExpireAt(ctx, k, t)
	}
}

// call returns the tenant's script call with room for one more attempt,
// queueing a full one on p.
func (pl *poll) call(ctx context.Context, p redis.Pipeliner, tenant string) *scriptCall {
	c := pl.attempts[tenant]
	if c != nil && c.n == maxScriptAttempts {
		attemptsScript.EvalSha(ctx, p, c.keys, c.args...)
		c = nil
	}
	if c == nil {
		c = &scriptCall{index: map[string]int{}}
		pl.attempts[tenant] = c
	}
	return c
}
