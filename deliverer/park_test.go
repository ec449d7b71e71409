package deliverer_test

import (
	"net/http"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/hookstream/hookstream/deliverer"
	"github.com/hookstream/hookstream/internal/testenv"
	"github.com/hookstream/hookstream/subscription"
)

// TestParkRestarts stops and starts the deliverer again and again while a
// lane is parked: nothing is sent twice, nothing is lost, and the retries
// topic does not grow with the restarts beyond the lane's markers.
func TestParkRestarts(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 1)
	rc, ep := e.receiverEndpoint(t, "", failing(1, 1, 500))
	o := runOpts{schedule: "0s,6s,100ms", park: 200 * time.Millisecond}
	stop := e.start(t, o)
	e.deliver(t, ep, 0, 1, 5)
	e.readAtLeast(t, e.topics.Retries, 6) // the marker, then events 1..5
	for range 4 {
		stop()
		stop = e.start(t, o)
		time.Sleep(500 * time.Millisecond)
	}
	testenv.Eventually(t, 30*time.Second, "5 deliveries", func() bool { return rc.delivered() == 5 })
	e.settled(t) // nothing else arrives once every record is finished
	all, ok := rc.receipts()
	if want := []int{1, 1, 2, 3, 4, 5}; !slices.Equal(all, want) {
		t.Errorf("receiver got %v, want %v (no duplicates after clean restarts)", all, want)
	}
	checkOrder(t, "restarts", ok, 5)
	parked := parkedRecords(t, e.kafka.ReadAll(t, e.topics.Retries))
	if len(parked) != 5 {
		t.Errorf("%d delivery records in retries, want 5: each parked once, whatever the restarts", len(parked))
	}
}

// TestParkedBacklogIsolation parks a big backlog of one endpoint for long
// and checks that another endpoint of the same partition, also failing
// once, gets its retry on time and everything else meanwhile: the backlog
// waits in the retries topic, not in memory ahead of anyone.
func TestParkedBacklogIsolation(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 1)
	slow := newReceiver(t, func(n, try int) int {
		if n == 1 && try == 1 {
			return 503
		}
		return 200
	})
	inner := slow.srv.Config.Handler
	slow.srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "20")
		inner.ServeHTTP(w, r)
	})
	epSlow := e.endpoint(t, slow.srv.URL, "")
	slow.setSecret(epSlow)
	fast, epFast := e.receiverEndpoint(t, "", failing(1, 1, 500))
	// Few records per partition in memory, so a backlog held there would
	// stop the partition.
	e.start(t, runOpts{schedule: "0s,300ms,300ms", park: 100 * time.Millisecond,
		extra: []deliverer.Option{deliverer.WithMaxBuffered(3)}})
	e.deliver(t, epSlow, 0, 1, 200)
	testenv.Eventually(t, 10*time.Second, "the slow endpoint's first attempt", func() bool { all, _ := slow.receipts(); return len(all) > 0 })
	start := time.Now()
	e.deliver(t, epFast, 1, 1, 50)
	testenv.Eventually(t, 10*time.Second, "50 deliveries to the other endpoint", func() bool { return fast.delivered() == 50 })
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("the other endpoint took %s, want well under the parked endpoint's 20s Retry-After", took)
	}
	_, ok := fast.receipts()
	checkOrder(t, "other endpoint", ok, 50)
	if all, _ := slow.receipts(); len(all) != 1 {
		t.Errorf("parked endpoint got %d requests before its Retry-After, want 1", len(all))
	}
}

// TestParkedBacklogDrains parks a backlog behind a failing first event,
// keeps adding to it while parked and while it is read back, and checks the
// whole backlog arrives once, in order, with the lane back in memory after.
func TestParkedBacklogDrains(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 2)
	rc, ep := e.receiverEndpoint(t, "", failing(1, 2, 500))
	e.start(t, runOpts{schedule: "0s,400ms,400ms,400ms", park: 100 * time.Millisecond})
	e.deliver(t, ep, 0, 1, 300)
	time.Sleep(200 * time.Millisecond)
	e.deliver(t, ep, 0, 301, 600) // while parked, or while draining
	testenv.Eventually(t, 30*time.Second, "600 deliveries", func() bool { return rc.delivered() == 600 })
	e.deliver(t, ep, 0, 601, 700) // after the drain: straight from deliveries
	testenv.Eventually(t, 30*time.Second, "700 deliveries", func() bool { return rc.delivered() == 700 })
	all, ok := rc.receipts()
	if dups := checkOrder(t, "backlog", ok, 700); dups != 0 {
		t.Errorf("%d duplicates without a crash", dups)
	}
	if len(all) != 702 {
		t.Errorf("%d requests, want 702 (event 1 three times)", len(all))
	}
	parked := parkedRecords(t, e.kafka.ReadAll(t, e.topics.Retries))
	if n := len(parked); n < 300 || n > 600 {
		t.Errorf("%d records went through retries, want the parked backlog (300..600) and not what came after the drain", n)
	}
}

// TestDrainRestart stops the deliverer while a lane drains a long backlog
// from retries and starts another: the drain goes on where it was, nothing
// sent twice.
func TestDrainRestart(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 1)
	rc := newReceiver(t, func(n, try int) int {
		time.Sleep(2 * time.Millisecond) // a drain long enough to stop into
		if n == 1 && try == 1 {
			return 500
		}
		return 200
	})
	ep := e.endpoint(t, rc.srv.URL, "")
	rc.setSecret(ep)
	o := runOpts{schedule: "0s,300ms", park: 100 * time.Millisecond}
	stop := e.start(t, o)
	e.deliver(t, ep, 0, 1, 1000)
	testenv.Eventually(t, 20*time.Second, "the drain under way", func() bool { return rc.delivered() >= 200 })
	stop()
	stopped := rc.delivered()
	e.start(t, o)
	testenv.Eventually(t, 30*time.Second, "1000 deliveries", func() bool { return rc.delivered() == 1000 })
	_, ok := rc.receipts()
	if dups := checkOrder(t, "drain restart", ok, 1000); dups != 0 {
		t.Errorf("%d duplicates after a clean stop at delivery %d", dups, stopped)
	}
}

// TestParkUnordered parks an unordered endpoint's failing event: the
// others go on around it, and it arrives once its backoff is over.
func TestParkUnordered(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 1)
	rc, ep := e.receiverEndpoint(t, subscription.OrderingNone, failing(3, 1, 500))
	e.start(t, runOpts{schedule: "0s,2s", park: 100 * time.Millisecond})
	e.deliver(t, ep, 0, 1, 50)
	testenv.Eventually(t, 20*time.Second, "49 deliveries", func() bool { return rc.delivered() >= 49 })
	_, ok := rc.receipts()
	if slices.Contains(ok, 3) {
		t.Errorf("event 3 delivered before its 2s backoff ended: %v", ok)
	}
	testenv.Eventually(t, 20*time.Second, "event 3", func() bool { return rc.delivered() == 50 })
	all, _ := rc.receipts()
	if len(all) != 51 {
		t.Errorf("%d requests, want 51 (event 3 twice, nothing else repeated)", len(all))
	}
}

// TestDrainDeadline stops a deliverer whose requests outlive the drain
// timeout on two partitions: the drain timeout bounds the whole stop, not
// each partition's.
func TestDrainDeadline(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 2)
	part := kgo.StickyKeyPartitioner(nil).ForTopic(e.topics.Deliveries)
	byPart := map[int]*subscription.Endpoint{}
	var accepted []*atomic.Int64
	for len(byPart) < 2 {
		u, n := blackHole(t)
		ep := e.endpoint(t, u, "")
		p := part.Partition(&kgo.Record{Key: []byte(ep.ID)}, 2)
		if byPart[p] == nil {
			byPart[p] = ep
			accepted = append(accepted, n)
		}
	}
	stop := e.start(t, runOpts{timeout: 20 * time.Second}) // drain timeout 3s
	for _, ep := range byPart {
		e.deliver(t, ep, 0, 1, 1)
	}
	testenv.Eventually(t, 20*time.Second, "a request in flight on both partitions", func() bool {
		return accepted[0].Load() > 0 && accepted[1].Load() > 0
	})
	start := time.Now()
	stop()
	took := time.Since(start)
	if took > 8*time.Second {
		t.Errorf("stop took %s with a 3s drain timeout", took)
	}
	// Both requests hang: a stop that did not wait for them would not be
	// bounded by the drain timeout, it would just be quick.
	if took < 2500*time.Millisecond {
		t.Errorf("stop took %s: it did not wait out the 3s drain timeout for the requests in flight", took)
	}
}

// TestParkedRecordsExpired deletes a parked lane's records from retries, as
// a too short retention would: the drain counts and logs it and the lane
// goes on with what comes next instead of waiting for records that are gone.
func TestParkedRecordsExpired(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 1)
	rc, ep := e.receiverEndpoint(t, "", failing(1, always, 500))
	reader := sdkmetric.NewManualReader()
	e.start(t, runOpts{schedule: "0s,1500ms,100ms", park: 100 * time.Millisecond,
		extra: []deliverer.Option{deliverer.WithMeterProvider(sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)))}})
	e.deliver(t, ep, 0, 1, 5)
	e.readAtLeast(t, e.topics.Retries, 6) // the marker, then events 1..5
	end := e.ends(t, e.topics.Retries)[0]
	adm := kadm.NewClient(e.client)
	off := kadm.Offsets{}
	off.AddOffset(e.topics.Retries, 0, end, -1)
	if _, err := adm.DeleteRecords(ctxFor(t, 10*time.Second), off); err != nil {
		t.Fatal(err)
	}
	e.deliver(t, ep, 0, 6, 7)
	testenv.Eventually(t, 20*time.Second, "events 6 and 7", func() bool { return rc.delivered() == 2 })
	_, ok := rc.receipts()
	if !slices.Equal(ok, []int{6, 7}) {
		t.Errorf("delivered %v, want 6 and 7 (1..5 expired)", ok)
	}
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(ctxFor(t, 5*time.Second), &rm); err != nil {
		t.Fatal(err)
	}
	if n := counter(rm, "hookstream.deliverer.retries.expired"); n < 1 {
		t.Errorf("hookstream.deliverer.retries.expired = %d, want at least 1", n)
	}
}

// counter sums the int64 sum metric name over its series.
func counter(rm metricdata.ResourceMetrics, name string) int64 {
	var n int64
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if s, ok := m.Data.(metricdata.Sum[int64]); ok && m.Name == name {
				for _, dp := range s.DataPoints {
					n += dp.Value
				}
			}
		}
	}
	return n
}

// TestParkUnorderedRestart stops the deliverer while an unordered lane's
// failed event waits in retries and the events after it were delivered
// around it: after the restart the waiting one arrives, and the lane's
// marker keeps the others from being sent again.
func TestParkUnorderedRestart(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 1)
	rc, ep := e.receiverEndpoint(t, subscription.OrderingNone, failing(3, 1, 500))
	o := runOpts{schedule: "0s,3s", park: 100 * time.Millisecond}
	stop := e.start(t, o)
	e.deliver(t, ep, 0, 1, 20)
	testenv.Eventually(t, 20*time.Second, "19 deliveries", func() bool { return rc.delivered() == 19 })
	stop()
	e.start(t, o)
	testenv.Eventually(t, 20*time.Second, "event 3", func() bool { return rc.delivered() == 20 })
	e.settled(t) // nothing else arrives once every record is finished
	all, _ := rc.receipts()
	if len(all) != 21 {
		t.Errorf("%d requests, want 21 (event 3 twice, nothing else again): %v", len(all), all)
	}
}
