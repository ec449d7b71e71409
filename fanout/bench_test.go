package fanout_test

import (
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/hookstream/hookstream/fanout"
	"github.com/hookstream/hookstream/producer"
	"github.com/hookstream/hookstream/subscription"
	"github.com/hookstream/hookstream/topic"
)

// BenchmarkFanout measures one fanout process (transactions, dedupe in
// Redis, matching through the real store) draining b.N pre-published
// events into 1, 10 or 100 deliveries each. The time includes the group
// join (about 30 ms on kfake).
func BenchmarkFanout(b *testing.B) {
	r := newRig(b, 6)
	matcher := r.store(b)
	d := &drainer{r: r, matcher: matcher}
	for _, k := range []int{1, 10, 100} {
		tenant := "t" + strconv.Itoa(k)
		for range k {
			r.endpoint(b, tenant, "*")
		}
		b.Run(fmt.Sprintf("fanout=%d", k), func(b *testing.B) {
			elapsed := d.drain(b, tenant, "agent.created")
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
			b.ReportMetric(float64(b.N*k)/elapsed.Seconds(), "deliveries/s")
		})
	}
}

// BenchmarkFanoutScale measures fanout's cost per event (ns/op) for a tenant
// of 100 and of 100,000 endpoints, 10 of which match every event. Matching
// must never scan the tenant's endpoints: the target is a ratio of
// at most 1.5 between the two, which the second run reports as
// cost-ratio. Both tenants exist for both measurements, so only the
// tenant's size differs. Creating the 100,000 endpoints through the store
// takes about 20 s (logged with -v).
func BenchmarkFanoutScale(b *testing.B) {
	r := newRig(b, 6)
	matcher := r.store(b)
	d := &drainer{r: r, matcher: matcher}
	sizes := []int{100, 100_000}
	for _, n := range sizes {
		start := time.Now()
		createScaleTenant(b, r.api, "scale-"+strconv.Itoa(n), n)
		b.Logf("created %d endpoints in %v", n, time.Since(start).Round(time.Millisecond))
	}
	perEvent := map[int]float64{}
	for _, n := range sizes {
		b.Run(fmt.Sprintf("endpoints=%d", n), func(b *testing.B) {
			elapsed := d.drain(b, "scale-"+strconv.Itoa(n), scaleType)
			// The last run is the one reported, with the largest b.N.
			perEvent[n] = float64(elapsed.Nanoseconds()) / float64(b.N)
			b.ReportMetric(float64(b.N*scaleMatching)/elapsed.Seconds(), "deliveries/s")
			if small := perEvent[sizes[0]]; n != sizes[0] && small > 0 {
				b.ReportMetric(perEvent[n]/small, "cost-ratio")
			}
		})
	}
}

// The events of BenchmarkFanoutScale, and how many endpoints of each
// tenant match them.
const (
	scaleType     = "agent.created"
	scaleMatching = 10
)

// createScaleTenant creates n endpoints of tenant through s, scaleMatching
// of which select scaleType (exactly, by prefix, by "*"), the rest spread
// over filters that do not.
func createScaleTenant(b testing.TB, s *subscription.Store, tenant string, n int) {
	b.Helper()
	matching := [][]string{{"agent.created"}, {"agent.*"}, {"*"}}
	other := [][]string{{"call.started"}, {"call.*"}, {"fleet.*"}, {"billing.payment_failed", "agent.deployed"}}
	ctx := ctxFor(b, 10*time.Minute)
	var next atomic.Int64
	var failed atomic.Pointer[error]
	var wg sync.WaitGroup
	for range 64 {
		wg.Go(func() {
			for failed.Load() == nil {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				events := other[i%len(other)]
				if i < scaleMatching {
					events = matching[i%len(matching)]
				}
				if _, err := s.Create(ctx, tenant, subscription.EndpointInput{URL: "http://127.0.0.1:1/hook", Events: events}); err != nil {
					failed.CompareAndSwap(nil, &err)
				}
			}
		})
	}
	wg.Wait()
	if err := failed.Load(); err != nil {
		b.Fatalf("creating endpoints of %s: %v", tenant, *err)
	}
}

// drainer runs one fanout per benchmark run, on topics and a group of
// that run's own.
type drainer struct {
	r       *rig
	matcher fanout.Matcher
	round   int
}

// drain publishes b.N events of eventType for tenant, then times one
// fanout process draining them (group join included).
func (d *drainer) drain(b *testing.B, tenant, eventType string) time.Duration {
	b.Helper()
	r := d.r
	d.round++
	ctx := ctxFor(b, 10*time.Minute)
	pfx := fmt.Sprintf("b%d.", d.round)
	names := topic.New(pfx)
	if err := topic.Ensure(ctx, kadm.NewClient(r.raw), names, topic.Partitions{Events: 6, Deliveries: 6, Other: 1}); err != nil {
		b.Fatal(err)
	}
	group := "bench-" + strconv.Itoa(d.round)
	pub := producer.New(r.raw, r.cat, producer.WithTopicPrefix(pfx))
	data := r.example(b, eventType)
	batch := make([]producer.Event, 0, 1000)
	for i := 0; i < b.N; {
		batch = batch[:0]
		for ; i < b.N && len(batch) < cap(batch); i++ {
			batch = append(batch, producer.Event{Type: eventType, Data: data, Key: "k" + strconv.Itoa(i%64)})
		}
		if _, err := pub.PublishBatch(ctx, tenant, batch); err != nil {
			b.Fatal(err)
		}
	}

	ends := recordEnds(b, r.kafka, names.Events)

	b.ResetTimer()
	start := time.Now()
	f := r.startOn(b, names, group, d.matcher, nil)
	waitCommitted(b, r.raw, names.Events, group, ends)
	elapsed := time.Since(start)
	b.StopTimer()
	if err := f.stop(); err != nil {
		b.Fatal(err)
	}
	return elapsed
}
