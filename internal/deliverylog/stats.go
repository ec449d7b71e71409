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

// attemptsScript indexes a batch of one tenant's attempts in one call: each
// attempt's member in its endpoint's list and its delivery's latest
// attempt; the minute counters of the attempts new in their endpoint's
// list, added up and written once per key; and each endpoint's state (its
// run of failures) moved on once, unless a later attempt is already in
// it. Every step is idempotent. Summaries, event lists, expiries, trims
// and event types need no script (poll.flush). Each redis.call costs
// about as much as the command it runs, so the script makes as few as it
// can.
//
// KEYS: every key the batch touches. ARGV: per attempt, the positions in
// KEYS of its endpoint list, minute counters, endpoint state and event
// hash; then member, outcome, latency bucket, attempt time (unix ms),
// delivery field, rank and delivery summary.
var attemptsScript = redis.NewScript(`
local F = 11
local counts, states = {}, {}
local added = 0
for b = 0, #ARGV - F, F do
  local ep, st, es, evd = KEYS[tonumber(ARGV[b + 1])], KEYS[tonumber(ARGV[b + 2])], KEYS[tonumber(ARGV[b + 3])], KEYS[tonumber(ARGV[b + 4])]
  local m, outcome, field = ARGV[b + 5], ARGV[b + 6], ARGV[b + 9]
  -- A replay must not put an older attempt back over a newer: the highest
  -- rank stays (summaries before this format were JSON with "r").
  local cur = redis.call('HGET', evd, field)
  local r = cur and tonumber(string.match(cur, '^(%d+),') or string.match(cur, '"r":(%d+)'))
  if not (r and r > tonumber(ARGV[b + 10])) then
    redis.call('HSET', evd, field, ARGV[b + 11])
  end
  if redis.call('ZADD', ep, 0, m) == 1 then
    added = added + 1
    local c = counts[st]
    if not c then c = {}; counts[st] = c end
    local o, l = 'o:' .. outcome, 'l:' .. ARGV[b + 7]
    c[o] = (c[o] or 0) + 1
    c[l] = (c[l] or 0) + 1
  end
  local s = states[es]
  if not s then
    local v = redis.call('HMGET', es, 'at', 'failing_since')
    s = {at = v[1] or '0', atn = tonumber(v[1] or '0'), fs = v[2], had = v[2], dirty = false}
    states[es] = s
  end
  local at = tonumber(ARGV[b + 8])
  if at >= s.atn then
    s.at, s.atn, s.dirty = ARGV[b + 8], at, true
    if outcome == 'delivered' then
      s.fs = false
    elseif outcome ~= 'deleted' and not s.fs then
      s.fs = ARGV[b + 8]
    end
  end
end
for st, c in pairs(counts) do
  for f, n in pairs(c) do redis.call('HINCRBY', st, f, n) end
end
for es, s in pairs(states) do
  if s.dirty then
    if s.fs then
      redis.call('HSET', es, 'at', s.at, 'failing_since', s.fs)
    else
      redis.call('HSET', es, 'at', s.at)
      if s.had then redis.call('HDEL', es, 'failing_since') end
    end
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
