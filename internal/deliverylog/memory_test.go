package deliverylog_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hookstream/hookstream/deliverer"
	"github.com/hookstream/hookstream/internal/deliverylog"
	"github.com/hookstream/hookstream/internal/testenv"
)

// BenchmarkIndexMemory reports Redis memory per indexed attempt (a failed
// attempt with typical request headers and a short response body) and how
// long an endpoint's first page takes with them indexed.
func BenchmarkIndexMemory(b *testing.B) {
	r := testenv.StartRedis(b)
	ix := deliverylog.NewIndex(r.Client, 0)
	ctx := context.Background()
	used := func() int64 {
		info, err := r.Client.Info(ctx, "memory").Result()
		if err != nil {
			b.Fatal(err)
		}
		for _, l := range strings.Split(info, "\r\n") {
			if v, ok := strings.CutPrefix(l, "used_memory:"); ok {
				n, _ := strconv.ParseInt(v, 10, 64)
				return n
			}
		}
		b.Fatal("no used_memory")
		return 0
	}
	// HOOKSTREAM_BENCH_ATTEMPTS sets how many attempts are indexed.
	n := 20000
	if v, err := strconv.Atoi(os.Getenv("HOOKSTREAM_BENCH_ATTEMPTS")); err == nil && v >= 3 {
		n = v
	}
	before := used()
	callsBefore, _ := commandStats(b, r.Client)
	cpuBefore := redisCPU(b, r.Client)
	now := time.Now()
	// Attempts go in as the indexer writes them: a poll at a time.
	var batch []deliverylog.Located
	for i := range n {
		a := deliverer.Attempt{Tenant: "acme", EndpointID: fmt.Sprintf("ep_%024x", i%50), EventID: fmt.Sprintf("evt_%024x", i/3),
			EventType: "agent.created", Attempt: i%3 + 1, Status: 500, LatencyMS: 42, Outcome: "failed", ErrorClass: "http_status",
			Trigger: "scheduled", ResponseBody: `{"error":"internal"}`, At: now.Add(time.Duration(i) * time.Millisecond),
			RequestHeaders: map[string]string{"Content-Type": "application/json", "User-Agent": "Hookstream/dev", "Webhook-Id": fmt.Sprintf("evt_%024x", i/3),
				"Webhook-Timestamp": "1764880000", "Webhook-Signature": "[redacted]", "Traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}}
		batch = append(batch, deliverylog.Located{Partition: int32(i % 6), Offset: int64(i), Attempt: a})
		if len(batch) == 1000 || i == n-1 {
			if err := ix.AddAll(ctx, batch); err != nil {
				b.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	perAttempt := float64(used()-before) / float64(n)
	calls, _ := commandStats(b, r.Client)
	cpu := redisCPU(b, r.Client) - cpuBefore
	// Latency percentiles of the two reads an operator makes most: an
	// endpoint's first page and one event's deliveries.
	quantiles := func(f func(i int) error) (p50, p99 float64) {
		ds := make([]time.Duration, 500)
		for i := range ds {
			start := time.Now()
			if err := f(i); err != nil {
				b.Fatal(err)
			}
			ds[i] = time.Since(start)
		}
		slices.Sort(ds)
		return float64(ds[len(ds)/2].Microseconds()) / 1000, float64(ds[len(ds)*99/100].Microseconds()) / 1000
	}
	pageP50, pageP99 := quantiles(func(i int) error {
		_, err := ix.EndpointAttempts(ctx, "acme", fmt.Sprintf("ep_%024x", i%50), deliverylog.Query{})
		return err
	})
	eventP50, eventP99 := quantiles(func(i int) error {
		_, err := ix.Event(ctx, "acme", fmt.Sprintf("evt_%024x", (i*37)%(n/3)))
		return err
	})
	b.ResetTimer()
	for range b.N {
		if _, err := ix.EndpointAttempts(ctx, "acme", fmt.Sprintf("ep_%024x", 7), deliverylog.Query{}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(perAttempt, "redis-bytes/attempt")
	b.ReportMetric(float64(used())/(1<<20), "redis-MiB")
	b.ReportMetric(float64(calls-callsBefore)/float64(n), "redis-calls/attempt")
	b.ReportMetric(cpu.Seconds()*1e6/float64(n), "redis-cpu-us/attempt")
	b.ReportMetric(pageP50, "page-p50-ms")
	b.ReportMetric(pageP99, "page-p99-ms")
	b.ReportMetric(eventP50, "event-p50-ms")
	b.ReportMetric(eventP99, "event-p99-ms")
}

// commandStats sums INFO commandstats: calls (a script's own calls
// included, as Redis counts them) and the microseconds Redis spent in
// them (a script's counted twice: in it and in its calls).
func commandStats(b *testing.B, rdb redis.UniversalClient) (calls, usec int64) {
	info, err := rdb.Info(context.Background(), "commandstats").Result()
	if err != nil {
		b.Fatal(err)
	}
	for _, l := range strings.Split(info, "\r\n") {
		_, stats, ok := strings.Cut(l, ":")
		if !strings.HasPrefix(l, "cmdstat_") || !ok {
			continue
		}
		for _, kv := range strings.Split(stats, ",") {
			k, v, _ := strings.Cut(kv, "=")
			n, _ := strconv.ParseInt(v, 10, 64)
			switch k {
			case "calls":
				calls += n
			case "usec":
				usec += n
			}
		}
	}
	return calls, usec
}

// redisCPU is the CPU time the Redis process has used, network included.
func redisCPU(b *testing.B, rdb redis.UniversalClient) time.Duration {
	d, err := deliverylog.RedisCPU(context.Background(), rdb)
	if err != nil {
		b.Fatal(err)
	}
	return d
}
