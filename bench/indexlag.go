package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hookstream/hookstream/internal/deliverylog"
)

// indexLagEvery samples one received delivery in this many for index lag.
const indexLagEvery = 200

// indexLagPoll is how often every waiting sample is looked up. The probe
// queries the Redis the indexer writes, from the benchmark process, so its
// cost counts against the indexer: at 10 ms, (a) ran about 1,000 HGETALL a
// second against 360 at 50 ms, and 50 ms is fine enough for a 2 s goal.
const indexLagPoll = 50 * time.Millisecond

// lagSample is one received delivery whose attempt is awaited in the index.
type lagSample struct {
	tenant  string
	eventID string
	recv    int64 // receiver's receipt time, unix ns
}

// indexLag measures how long after a receiver got a delivery its attempt
// is queryable in the delivery-log index on the scenario's Redis.
type indexLag struct {
	mu     sync.Mutex
	closed bool // late deliveries after finish are not sampled
	in     chan lagSample
	out    chan indexLagResult
}

type indexLagResult struct {
	lat        []int64
	unresolved int
}

// startIndexLag polls the index for sampled deliveries until ctx ends or
// finish is called.
func startIndexLag(ctx context.Context, redisURL string) (*indexLag, error) {
	ro, err := redis.ParseURL(redisURL)
	if err != nil {
		return nil, fmt.Errorf("index lag: %w", err)
	}
	rdb := redis.NewClient(ro)
	ix := deliverylog.NewIndex(rdb, 0)
	l := &indexLag{in: make(chan lagSample, 4096), out: make(chan indexLagResult, 1)}
	go func() {
		defer rdb.Close()
		var res indexLagResult
		var pending []lagSample
		tick := time.NewTicker(indexLagPoll)
		defer tick.Stop()
		in := l.in
		for in != nil || len(pending) > 0 {
			select {
			case s, ok := <-in:
				if !ok {
					in = nil
					// Give the index a bounded time to catch up after the load.
					var cancel context.CancelFunc
					ctx, cancel = context.WithTimeout(ctx, 10*time.Second)
					defer cancel()
					continue
				}
				pending = append(pending, s)
			case <-tick.C:
				keep := pending[:0]
				for _, s := range pending {
					p, err := ix.EventAttempts(ctx, s.tenant, s.eventID, deliverylog.Query{Limit: 1})
					if err == nil && len(p.Data) > 0 {
						res.lat = append(res.lat, time.Now().UnixNano()-s.recv)
						continue
					}
					keep = append(keep, s)
				}
				pending = keep
			case <-ctx.Done():
				res.unresolved = len(pending)
				l.out <- res
				return
			}
		}
		l.out <- res
	}()
	return l, nil
}

// add samples one delivery; it never blocks the receiver.
func (l *indexLag) add(tenant int, eventID string, recv int64) {
	if eventID == "" {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return
	}
	select {
	case l.in <- lagSample{tenant: tenantName(tenant), eventID: eventID, recv: recv}:
	default:
	}
}

// finish stops sampling and returns the lag percentiles once every sample
// is found or the catch-up time is over.
func (l *indexLag) finish() (latencyStats, int) {
	l.mu.Lock()
	l.closed = true
	close(l.in)
	l.mu.Unlock()
	res := <-l.out
	return percentiles(res.lat), res.unresolved
}

// redisUsedMemory is the scenario Redis's used_memory: the delivery-log
// index, once it has caught up, plus the small endpoint cache.
func redisUsedMemory(ctx context.Context, redisURL string) (int64, error) {
	ro, err := redis.ParseURL(redisURL)
	if err != nil {
		return 0, err
	}
	rdb := redis.NewClient(ro)
	defer rdb.Close()
	info, err := rdb.Info(ctx, "memory").Result()
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(info, "\r\n") {
		if v, ok := strings.CutPrefix(l, "used_memory:"); ok {
			return strconv.ParseInt(v, 10, 64)
		}
	}
	return 0, fmt.Errorf("no used_memory in INFO")
}
