package deliverylog

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hookstream/hookstream/internal/record"
)

// Per endpoint, the index keeps a counter hash per minute (outcomes,
// dead letters and a latency histogram) and the endpoint's state (its
// current run of failures). Counters move only when an attempt first
// enters the endpoint's list, so replaying the topic never counts twice.

func statKey(tenant, ep string, at time.Time) string {
	return tag(tenant) + "st:" + ep + ":" + strconv.FormatInt(at.Unix()/60, 10)
}
func stateKey(tenant, ep string) string { return tag(tenant) + "es:" + ep }

// latencyBase is the ratio of consecutive latency buckets: a percentile
// read from the histogram is within 20% of the true one.
const latencyBase = 1.2

func latencyBucket(ms int64) int {
	return int(math.Ceil(math.Log(float64(max(ms, 0))+1) / math.Log(latencyBase)))
}

// bucketMS is the largest latency of bucket b.
func bucketMS(b int) int64 { return int64(math.Round(math.Pow(latencyBase, float64(b)) - 1)) }

// attemptsScript indexes a batch of one tenant's attempts in one call:
// each attempt as an entry of its endpoint's stream, its ref and summary
// in its delivery's field of the event's hash, the minute counters, added
// up and written once per key, and each endpoint's state (its run of
// failures), moved on once unless a later attempt is already in it.
//
// An endpoint's attempts are keyed by endpoint, so they come in one
// attempts partition, in offset order: the state keeps the last offset
// indexed per partition ("o:<partition>"), and an attempt at or below it is
// a replay (the indexer restarted) and skipped whole. So nothing is
// counted or listed twice. Stream ids are the attempt's millisecond, or
// the endpoint's last id if that is later (a clock behind), so an
// endpoint's stream runs in the order its attempts were written. Each
// redis.call costs about as much as the command it runs, so the script
// makes as few as it can.
//
// KEYS: every key the batch touches. ARGV[1]: the oldest stream id to
// keep (ms). Then per attempt: the positions in KEYS of its endpoint
// stream, minute counters, endpoint state and event hash; partition,
// offset, attempt time (ms), outcome, latency bucket, delivery field,
// rank, delivery summary and stream value (summaryValue), to which the
// script appends the attempt's millisecond less its entry id's when the
// id had to move past a clock behind.
var attemptsScript = redis.NewScript(`
local F = 13
local counts, states = {}, {}
local added = 0
local minid = ARGV[1]
for b = 1, #ARGV - F, F do
  local ep, st, es, evd = KEYS[tonumber(ARGV[b + 1])], KEYS[tonumber(ARGV[b + 2])], KEYS[tonumber(ARGV[b + 3])], KEYS[tonumber(ARGV[b + 4])]
  local part, off, outcome = ARGV[b + 5], tonumber(ARGV[b + 6]), ARGV[b + 8]
  local s = states[es]
  if not s then
    local v = redis.call('HMGET', es, 'at', 'failing_since', 'lid', 'o:' .. part)
    s = {at = v[1] or '0', atn = tonumber(v[1] or '0'), fs = v[2], had = v[2], lid = tonumber(v[3] or '0'), off = {}, dirty = false}
    s.off[part] = tonumber(v[4] or '-1')
    if not v[3] then
      -- No state (its key expired first): the stream's last id bounds
      -- the next one all the same.
      local last = redis.call('XREVRANGE', ep, '+', '-', 'COUNT', 1)[1]
      if last then s.lid = tonumber(string.match(last[1], '^(%d+)')) end
    end
    states[es] = s
  end
  if s.off[part] == nil then
    s.off[part] = tonumber(redis.call('HGET', es, 'o:' .. part) or '-1')
  end
  if off > s.off[part] then
    s.off[part], s.dirty = off, true
    local at = tonumber(ARGV[b + 7])
    local ms = math.max(at, s.lid)
    local v = ARGV[b + 13]
    if at < ms then v = v .. '\31' .. (at - ms) end
    local id = redis.call('XADD', ep, 'MINID', '~', minid, ms .. '-*', 'v', v)
    local seq
    s.lid, seq = string.match(id, '^(%d+)-(%d+)$')
    s.lid = tonumber(s.lid)
    local ref = string.format('%x', s.lid)
    if seq ~= '0' then ref = ref .. string.format('-%x', tonumber(seq)) end
    added = added + 1
    -- The delivery's field: the highest-ranked summary with its ref,
    -- then the refs of the delivery's other attempts.
    local field, sum = ARGV[b + 10], ref .. ',' .. ARGV[b + 12]
    -- A delivery's first attempt, the common case, is one HSETNX.
    if redis.call('HSETNX', evd, field, sum .. ';') == 0 then
      local cur = redis.call('HGET', evd, field)
      local csum, crefs = string.match(cur, '^([^;]*);(.*)$')
      local cref, cms, cn = string.match(csum or '', '^(([%x]+)[%-%x]*),(%d+),')
      if cms and tonumber(cms, 16) * 1000 + tonumber(cn) > tonumber(ARGV[b + 11]) then
        sum, cref = csum, ref
      end
      if cref then
        if crefs ~= '' then crefs = crefs .. ' ' end
        sum = sum .. ';' .. crefs .. cref
      else
        sum = sum .. ';'
      end
      redis.call('HSET', evd, field, sum)
    end
    local c = counts[st]
    if not c then c = {}; counts[st] = c end
    local o, l = 'o:' .. outcome, 'l:' .. ARGV[b + 9]
    c[o] = (c[o] or 0) + 1
    c[l] = (c[l] or 0) + 1
    if at >= s.atn then
      s.at, s.atn = ARGV[b + 7], at
      if outcome == 'delivered' then
        s.fs = false
      elseif outcome ~= 'deleted' and not s.fs then
        s.fs = ARGV[b + 7]
      end
    end
  end
end
for st, c in pairs(counts) do
  for f, n in pairs(c) do redis.call('HINCRBY', st, f, n) end
end
for es, s in pairs(states) do
  if s.dirty then
    local args = {'HSET', es, 'at', s.at, 'lid', string.format('%d', s.lid)}
    for p, o in pairs(s.off) do
      if o >= 0 then
        args[#args + 1] = 'o:' .. p
        args[#args + 1] = string.format('%d', o)
      end
    end
    if s.fs then
      args[#args + 1] = 'failing_since'
      args[#args + 1] = s.fs
    elseif s.had then
      redis.call('HDEL', es, 'failing_since')
    end
    redis.call(unpack(args))
  end
end
return added
`)

// deadScript records a delivery's dead letter once, counting it in its
// minute. KEYS: event hash, minute counters. ARGV: field, reason, expiry.
var deadScript = redis.NewScript(`
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 1 then
  redis.call('HINCRBY', KEYS[2], 'dead', 1)
  redis.call('PEXPIREAT', KEYS[2], ARGV[3])
end
redis.call('PEXPIREAT', KEYS[1], ARGV[3])
return 1
`)

// Stats sums an endpoint's attempts over a window.
type Stats struct {
	Since, Until time.Time
	Delivered    int64
	Failed       int64 // failed attempts: every outcome but delivered and deleted
	Dead         int64 // deliveries dead-lettered
	// SuccessRate is Delivered over Delivered+Failed; -1 with no attempts.
	SuccessRate float64
	P50MS       int64 // latency percentiles, within 20%
	P99MS       int64
	// FailingSince is when the endpoint's current run of failed attempts
	// began; zero when its last attempt succeeded.
	FailingSince time.Time
}

// ErrWindow: the stats window is not positive.
var ErrWindow = errors.New("deliverylog: window must be positive")

// EndpointStats sums the tenant endpoint's attempts of the last window
// (at most the retention), by minute.
func (ix *Index) EndpointStats(ctx context.Context, tenant, endpointID string, window time.Duration) (Stats, error) {
	if window <= 0 {
		return Stats{}, ErrWindow
	}
	window = min(window, ix.retention)
	now := ix.now()
	st := Stats{Since: now.Add(-window).Truncate(time.Minute), Until: now, SuccessRate: -1}
	var cmds []*redis.MapStringStringCmd
	var state *redis.StringCmd
	_, err := ix.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for t := st.Since; !t.After(now); t = t.Add(time.Minute) {
			cmds = append(cmds, p.HGetAll(ctx, statKey(tenant, endpointID, t)))
		}
		state = p.HGet(ctx, stateKey(tenant, endpointID), "failing_since")
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return Stats{}, fmt.Errorf("deliverylog: stats: %w", err)
	}
	hist := map[int]int64{}
	for _, c := range cmds {
		for f, v := range c.Val() {
			n, _ := strconv.ParseInt(v, 10, 64)
			switch kind, arg, _ := strings.Cut(f, ":"); {
			case f == "dead":
				st.Dead += n
			case kind == "o" && arg == "delivered":
				st.Delivered += n
			case kind == "o" && arg != "deleted":
				st.Failed += n
			case kind == "l":
				b, _ := strconv.Atoi(arg)
				hist[b] += n
			}
		}
	}
	if total := st.Delivered + st.Failed; total > 0 {
		st.SuccessRate = float64(st.Delivered) / float64(total)
	}
	st.P50MS, st.P99MS = percentile(hist, 0.5), percentile(hist, 0.99)
	if ms, err := strconv.ParseInt(state.Val(), 10, 64); err == nil {
		st.FailingSince = time.UnixMilli(ms).UTC()
	}
	return st, nil
}

// percentile is the upper bound of the bucket holding quantile q.
func percentile(hist map[int]int64, q float64) int64 {
	var total int64
	top := 0
	for b, n := range hist {
		total += n
		top = max(top, b)
	}
	if total == 0 {
		return 0
	}
	need := int64(math.Ceil(q * float64(total)))
	var seen int64
	for b := 0; b <= top; b++ {
		seen += hist[b]
		if seen >= need {
			return bucketMS(b)
		}
	}
	return bucketMS(top)
}

// addDead notes a delivery's dead letter and counts it.
func (ix *Index) addDead(ctx context.Context, p redis.Pipeliner, r *kgo.Record) {
	tenant, ep, ev := record.Header(r, record.HeaderTenant), record.Header(r, record.HeaderEndpoint), record.Header(r, record.HeaderEventID)
	expires := r.Timestamp.Add(ix.retention)
	if len(tenant) == 0 || len(ep) == 0 || len(ev) == 0 || !expires.After(ix.now()) {
		return
	}
	deadScript.EvalSha(ctx, p,
		[]string{eventDeliveriesKey(string(tenant), string(ev)), statKey(string(tenant), string(ep), r.Timestamp)},
		"dead:"+string(ep), string(record.Header(r, record.HeaderReason)), expires.UnixMilli())
	// When, so that a later attempt (a resend, a recover) outranks it.
	p.HSet(ctx, eventDeliveriesKey(string(tenant), string(ev)), "deadat:"+string(ep), r.Timestamp.UnixMilli())
}
