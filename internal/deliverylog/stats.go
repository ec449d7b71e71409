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

// Per endpoint, the index keeps a counter hash per minute (attempts by
// class and latency bucket, and dead letters) and the endpoint's state
// (its current run of failures). Counters move only when an attempt first
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

// attemptsScript writes a batch of one tenant's attempts as the indexer
// worked them out (write.go): each attempt as an entry of its endpoint's
// stream under the id the indexer chose, its ref and summary in its
// delivery's field of the event's hash, the minute counters and the
// endpoints' states.
//
// The indexer works from its copy of each endpoint's state, so the script
// first checks that copy: the state's last stream id and the offsets
// it names must be what Redis holds. If another writer moved them (a
// second indexer during a rollout, a key expired, a flush), it writes
// nothing and answers -1; the indexer reloads and tries again. So the
// check and the writes are atomic, as one script, and replays are skipped
// by the indexer without a round trip. The script does no per-attempt
// work beyond its commands: working out ids, refs and counters in Lua cost
// Redis twice what the commands do.
//
// KEYS: every key the batch touches. ARGV: four sections, each a count
// and its items:
//   - checks: state key, field count, (field, expected value or "")...
//   - attempts: stream key, entry id, entry value, event hash, delivery
//     field, the field's value for a first attempt (summary with its ref,
//     then ";");
//   - counters: key, field, increment;
//   - states: key, field-value count, field-values..., field to delete or "".
//
// Keys are positions in KEYS.
var attemptsScript = redis.NewScript(`
-- i is the position of the next argument to read.
local i = 2
for _ = 1, tonumber(ARGV[1]) do
  local es, n = KEYS[tonumber(ARGV[i])], tonumber(ARGV[i + 1])
  i = i + 2
  local fs = {}
  for j = 1, n do fs[j] = ARGV[i + 2 * j - 2] end
  local v = redis.call('HMGET', es, unpack(fs))
  for j = 1, n do
    if (v[j] or '') ~= ARGV[i + 2 * j - 1] then return -1 end
  end
  i = i + 2 * n
end
local na = tonumber(ARGV[i])
i = i + 1
for _ = 1, na do
  redis.call('XADD', KEYS[tonumber(ARGV[i])], ARGV[i + 1], 'v', ARGV[i + 2])
  local evd, field, val = KEYS[tonumber(ARGV[i + 3])], ARGV[i + 4], ARGV[i + 5]
  -- A delivery's first attempt, the common case, is one HSETNX. Else
  -- the field keeps the highest-ranked summary with its ref, then the
  -- refs of the delivery's other attempts. Summaries rank by their
  -- ref's millisecond, then attempt number (at most 999).
  if redis.call('HSETNX', evd, field, val) == 0 then
    local sum = string.sub(val, 1, -2)
    local ref, ms, n = string.match(sum, '^(([%x]+)[%-%x]*),(%d+),')
    local cur = redis.call('HGET', evd, field)
    local csum, crefs = string.match(cur, '^([^;]*);(.*)$')
    local cref, cms, cn = string.match(csum or '', '^(([%x]+)[%-%x]*),(%d+),')
    if cms and tonumber(cms, 16) * 1000 + math.min(tonumber(cn), 999) > tonumber(ms, 16) * 1000 + math.min(tonumber(n), 999) then
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
  i = i + 6
end
local nc = tonumber(ARGV[i])
i = i + 1
for _ = 1, nc do
  redis.call('HINCRBY', KEYS[tonumber(ARGV[i])], ARGV[i + 1], ARGV[i + 2])
  i = i + 3
end
local ns = tonumber(ARGV[i])
i = i + 1
for _ = 1, ns do
  local es, n = KEYS[tonumber(ARGV[i])], tonumber(ARGV[i + 1])
  redis.call('HSET', es, unpack(ARGV, i + 2, i + 1 + n))
  i = i + 2 + n
  if ARGV[i] ~= '' then redis.call('HDEL', es, ARGV[i]) end
  i = i + 1
end
return na
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
			if f == "dead" {
				st.Dead += n
				continue
			}
			// A class and bucket ("d12"); before 2026-12-05, an
			// outcome ("o:delivered") and a bucket ("l:12") apart.
			if len(f) < 2 || f[1] == '-' || f[1] == '+' {
				continue
			}
			if b, err := strconv.Atoi(f[1:]); err == nil {
				switch f[0] {
				case classDelivered:
					st.Delivered += n
				case classFailed:
					st.Failed += n
				case classNeither:
				default:
					continue
				}
				hist[b] += n
				continue
			}
			switch kind, arg, _ := strings.Cut(f, ":"); {
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
