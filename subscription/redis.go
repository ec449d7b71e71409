package subscription

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// keys names the Redis keys of the endpoint cache, all under
// <prefix>{endpoints}: so other packages' keys never collide with them.
// The hash tag {endpoints} puts every key in one Redis Cluster slot: the
// scripts and MULTI/EXEC reads below span many keys, and the generation
// marker must live on the node holding the data it vouches for (a master
// that loses its data loses the marker with it, so a rebuild follows).
//
//	data             hash  id -> endpoint JSON
//	applied          hash  id -> offset of the endpoints-topic record applied last (kept for deleted ids)
//	tenant:<t>       zset  ids of tenant t, score 0: ZRANGEBYLEX lists in creation order (ids start with time)
//	idx:<t>:<filter> set   ids of t's enabled endpoints that list filter; filters never contain ':'
//	didx:<t>:<filter> set  the same for t's disabled endpoints (the delivery log names them)
//	changes          int   bumped by every applied change (also a pub/sub channel)
//	generation       str   set only when a full rebuild from the topic has completed
//	offsets          hash  partition -> next offset of the topic reflected here
//	rebuild          str   rebuild lock (owner token)
//	lock:<id>        str   write lock of one endpoint (owner token)
type keys struct {
	base                                                     string
	data, applied, changes, generation, offsets, rebuildLock string
}

func newKeys(prefix string) keys {
	b := prefix + "{endpoints}:"
	return keys{
		base: b, data: b + "data", applied: b + "applied", changes: b + "changes",
		generation: b + "generation", offsets: b + "offsets", rebuildLock: b + "rebuild",
	}
}

func (k keys) index(tenant, filter string) string { return k.base + "idx:" + tenant + ":" + filter }
func (k keys) tenant(t string) string             { return k.base + "tenant:" + t }
func (k keys) lock(id string) string              { return k.base + "lock:" + id }

// disabledIndex is index for disabled endpoints.
func (k keys) disabledIndex(tenant, filter string) string {
	return k.base + "didx:" + tenant + ":" + filter
}

// applyScript applies one record of the endpoints topic, atomically: unless
// this record (0) or a later one (-1) was applied already, it drops the old
// value's index entries, writes the new value (or deletes, for a
// tombstone), indexes it, and bumps the change counter. Ordering by the
// Kafka offset (all records of one id share a partition) makes Redis
// converge on exactly what compaction keeps: the last record per key.
// Key names are built here from ARGV, which Redis Cluster allows because
// every key shares the {endpoints} slot; KEYS[1] (the data hash) routes the
// call to that slot's node.
//
// KEYS: data. ARGV: base, id, offset, value ("" = tombstone), tenant, indexed ("1" =
// enabled), filters...
var applyScript = redis.NewScript(`
local b, id, pos = ARGV[1], ARGV[2], tonumber(ARGV[3])
local cur = redis.call('HGET', b .. 'applied', id)
if cur then
  cur = tonumber(cur)
  if cur > pos then return -1 end
  if cur == pos then return 0 end
end
local old = redis.call('HGET', b .. 'data', id)
if old then
  local o = cjson.decode(old)
  redis.call('ZREM', b .. 'tenant:' .. o.tenant, id)
  if type(o.events) == 'table' then
    for _, f in ipairs(o.events) do
      redis.call('SREM', b .. 'idx:' .. o.tenant .. ':' .. f, id)
      redis.call('SREM', b .. 'didx:' .. o.tenant .. ':' .. f, id)
    end
  end
end
if ARGV[4] == '' then
  redis.call('HDEL', b .. 'data', id)
else
  local t = ARGV[5]
  redis.call('HSET', b .. 'data', id, ARGV[4])
  redis.call('ZADD', b .. 'tenant:' .. t, 0, id)
  local set = 'didx:'
  if ARGV[6] == '1' then set = 'idx:' end
  for i = 7, #ARGV do redis.call('SADD', b .. set .. t .. ':' .. ARGV[i], id) end
end
redis.call('HSET', b .. 'applied', id, ARGV[3])
local n = redis.call('INCR', b .. 'changes')
if redis.call('EXISTS', b .. 'generation') == 1 then
  redis.call('PUBLISH', b .. 'changes', n)
end
return 1
`)

// finishScript ends a rebuild, if the caller still holds the rebuild lock
// (a FLUSHALL during the rebuild drops the lock, and the half-built cache
// must not be marked complete): it records the offsets read, sets the
// generation marker and releases the lock. KEYS: generation. ARGV: base, token, generation,
// then partition, offset pairs.
var finishScript = redis.NewScript(`
local b = ARGV[1]
if redis.call('GET', b .. 'rebuild') ~= ARGV[2] then return 0 end
redis.call('DEL', b .. 'offsets')
for i = 4, #ARGV, 2 do redis.call('HSET', b .. 'offsets', ARGV[i], ARGV[i+1]) end
redis.call('SET', b .. 'generation', ARGV[3])
redis.call('DEL', b .. 'rebuild')
local n = redis.call('INCR', b .. 'changes')
redis.call('PUBLISH', b .. 'changes', n)
return 1
`)

// offsetsScript records how far a tailer applied the topic, only forward,
// and only within the generation it tails (after a FLUSHALL it must not
// recreate offsets that the next rebuild would trust). Returns 0 when the
// generation changed. KEYS: offsets. ARGV: base, generation, then partition, offset pairs.
var offsetsScript = redis.NewScript(`
local b = ARGV[1]
if redis.call('GET', b .. 'generation') ~= ARGV[2] then return 0 end
for i = 3, #ARGV, 2 do
  local cur = redis.call('HGET', b .. 'offsets', ARGV[i])
  if not cur or tonumber(cur) < tonumber(ARGV[i+1]) then
    redis.call('HSET', b .. 'offsets', ARGV[i], ARGV[i+1])
  end
end
return 1
`)

// renewScript extends a lock the caller holds. KEYS[1] lock, ARGV token, ms.
var renewScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
`)

// unlockScript releases a lock the caller holds. KEYS[1] lock, ARGV token.
var unlockScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`)

// change is one record of the endpoints topic, ready to apply.
type change struct {
	id     string
	offset int64
	value  []byte    // nil: tombstone
	ep     *Endpoint // decoded value; nil for a tombstone
}

func (s *Store) applyArgs(c change) []any {
	args := []any{s.keys.base, c.id, c.offset, ""}
	if c.ep == nil {
		return args
	}
	indexed := "0"
	if !c.ep.Disabled {
		indexed = "1"
	}
	args[3] = c.value
	args = append(args, c.ep.Tenant, indexed)
	for _, f := range c.ep.Events {
		args = append(args, f)
	}
	return args
}

// Results of applying one change.
const (
	superseded     = -1 // a later record of the endpoint was applied before
	alreadyApplied = 0  // this very record was applied before (by a tailer)
	applied        = 1
)

// apply applies changes in one pipeline and returns each one's result.
func (s *Store) apply(ctx context.Context, changes []change) ([]int64, error) {
	if len(changes) == 0 {
		return nil, nil
	}
	run := func() ([]redis.Cmder, error) {
		return s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for _, c := range changes {
				applyScript.EvalSha(ctx, p, []string{s.keys.data}, s.applyArgs(c)...)
			}
			return nil
		})
	}
	cmds, err := run()
	if err != nil && isNoScript(err) {
		if err = applyScript.Load(ctx, s.rdb).Err(); err != nil {
			return nil, redisErr(err)
		}
		cmds, err = run()
	}
	if err != nil {
		return nil, redisErr(err)
	}
	out := make([]int64, len(cmds))
	for i, c := range cmds {
		out[i], _ = c.(*redis.Cmd).Int64()
	}
	return out, nil
}

func isNoScript(err error) bool { return err != nil && strings.HasPrefix(err.Error(), "NOSCRIPT") }

// redisErr marks a Redis failure as ErrUnavailable, leaving context errors
// (the caller's deadline) as they are.
func redisErr(err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return fmt.Errorf("%w: redis: %w", ErrUnavailable, err)
}

func offsetArgs(args []any, offsets map[int32]int64) []any {
	for p, o := range offsets {
		args = append(args, strconv.Itoa(int(p)), o)
	}
	return args
}
