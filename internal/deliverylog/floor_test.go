package deliverylog

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/segmentio/encoding/json"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hookstream/hookstream/deliverer"
	"github.com/hookstream/hookstream/internal/record"
	"github.com/hookstream/hookstream/internal/testenv"
)

// BenchmarkWriteFloor reports Redis's CPU per delivery for the index's
// writes in bench (a)'s shape: 100 tenants of 10 endpoints, each event to
// its tenant's ten, polls of 200 events with one delivered attempt per
// delivery. b.N is the number of polls.
//
//   - "index" is the indexer's own write path, records in, as a run
//     polls them.
//   - "commands" is the least an index answering the delivery log's
//     queries must send for the same deliveries, pipelined, with no
//     script, endpoint state, counters or housekeeping: per event its hash
//     and its place in the tenant's list; per delivery its place in the
//     endpoint's list, its attempt's entry in the endpoint's stream, and
//     its summary in the event's hash.
//
// The gap between the two is what the index's guarantees cost Redis (the
// script that checks the indexer's view, stats, expiries); "commands" is
// a floor no layout of these queries' data in Redis goes below by much.
func BenchmarkWriteFloor(b *testing.B) {
	const events, tenants, fanout, partitions = 200, 100, 10, 12
	for _, mode := range []string{"index", "commands"} {
		b.Run(mode, func(b *testing.B) {
			r := testenv.StartRedis(b)
			ctx := context.Background()
			x := NewIndexer(IndexerConfig{Topic: "a", Matches: "m", Dead: "x", Retries: "r"}, r.Client)
			done := newHousekeeping()
			pl := x.ix.newPoll(done)
			offsets := make([]int64, partitions)
			now := time.Now()
			poll := func(n int) []*kgo.Record {
				var recs []*kgo.Record
				for e := n * events; e < (n+1)*events; e++ {
					t := e % tenants
					m := record.Match{Tenant: fmt.Sprintf("t%03d", t), EventID: fmt.Sprintf("evt_%024x", e), EventType: "agent.created",
						Topic: "events", Partition: int32(e % partitions), Offset: int64(e), At: now.Add(time.Duration(e) * time.Millisecond)}
					for i := range fanout {
						m.Endpoints = append(m.Endpoints, fmt.Sprintf("ep_%021x%03d", t, i))
					}
					mr, err := m.Record("m")
					if err != nil {
						b.Fatal(err)
					}
					mr.Timestamp = m.At
					recs = append(recs, mr)
					for _, ep := range m.Endpoints {
						a := deliverer.Attempt{Tenant: m.Tenant, EndpointID: ep, EventID: m.EventID, EventType: m.EventType, Attempt: 1,
							Status: 200, LatencyMS: 3, Outcome: "delivered", Trigger: "scheduled", At: m.At.Add(5 * time.Millisecond),
							RequestHeaders: map[string]string{"Content-Type": "application/json", "Webhook-Id": m.EventID, "Webhook-Signature": "[redacted]"}}
						v, err := json.Marshal(a)
						if err != nil {
							b.Fatal(err)
						}
						p := int32(len(recs) % partitions)
						recs = append(recs, &kgo.Record{Topic: "a", Partition: p, Offset: offsets[p], Key: []byte(ep), Value: v, Timestamp: a.At})
						offsets[p]++
					}
				}
				return recs
			}
			var busy time.Duration
			for n := range b.N {
				recs := poll(n)
				before, err := RedisCPU(ctx, r.Client)
				if err != nil {
					b.Fatal(err)
				}
				if mode == "index" {
					err = x.ix.pipelined(ctx, func(p redis.Pipeliner) error {
						pl.reset(done)
						for _, rec := range recs {
							x.queue(ctx, p, pl, rec)
						}
						return pl.flush(ctx, p)
					})
					if err == nil {
						err = pl.settle(ctx)
					}
				} else {
					err = floorCommands(ctx, r.Client, recs)
				}
				if err != nil {
					b.Fatal(err)
				}
				after, err := RedisCPU(ctx, r.Client)
				if err != nil {
					b.Fatal(err)
				}
				busy += after - before
			}
			b.ReportMetric(busy.Seconds()*1e6/float64(b.N*events*fanout), "redis-cpu-us/delivery")
		})
	}
}

// floorCommands sends the fewest writes of BenchmarkWriteFloor's
// "commands" for recs, in one pipeline.
func floorCommands(ctx context.Context, rdb *redis.Client, recs []*kgo.Record) error {
	p := rdb.Pipeline()
	var buf []byte
	for _, r := range recs {
		if r.Topic == "m" {
			m, err := record.ParseMatch(r)
			if err != nil {
				return err
			}
			em := eventMember(m)
			fields := []any{"type", m.EventType, "at", strconv.FormatInt(m.At.UnixMilli(), 10),
				"src", Location{m.Topic, m.Partition, m.Offset}.String(), "m", em}
			for _, ep := range m.Endpoints {
				fields = append(fields, "ep:"+ep, "1")
			}
			p.HSet(ctx, eventDeliveriesKey(m.Tenant, m.EventID), fields...)
			p.ZAdd(ctx, eventsKey(m.Tenant), redis.Z{Member: em})
			for _, ep := range m.Endpoints {
				p.ZAdd(ctx, endpointEventsKey(m.Tenant, ep), redis.Z{Member: em})
			}
			continue
		}
		var a deliverer.Attempt
		if err := decodeSummaryFields(r.Value, &a); err != nil {
			return err
		}
		buf = appendSummary(buf[:0], &a, r.Partition, r.Offset)
		p.XAdd(ctx, &redis.XAddArgs{Stream: endpointKey(a.Tenant, a.EndpointID), Values: []any{"v", string(buf)}})
		buf = lastValue(&a).append(buf[:0])
		p.HSetNX(ctx, eventDeliveriesKey(a.Tenant, a.EventID), "a:"+a.EndpointID, string(buf))
	}
	_, err := p.Exec(ctx)
	return err
}

// RedisCPU is the CPU time the Redis process has used, network included.
func RedisCPU(ctx context.Context, rdb redis.UniversalClient) (time.Duration, error) {
	info, err := rdb.Info(ctx, "cpu").Result()
	if err != nil {
		return 0, err
	}
	var s float64
	for _, l := range strings.Split(info, "\r\n") {
		k, v, _ := strings.Cut(l, ":")
		if k == "used_cpu_sys" || k == "used_cpu_user" {
			f, _ := strconv.ParseFloat(v, 64)
			s += f
		}
	}
	return time.Duration(s * float64(time.Second)), nil
}
