package deliverer_test

import (
	"testing"
	"time"

	"github.com/hookstream/hookstream/deliverer"
	"github.com/hookstream/hookstream/internal/testenv"
)

// recordBytes is about what one of the tests' delivery records counts
// against the buffered-bytes bound: its value, headers and the fixed
// per-record overhead.
const recordBytes = 1000

// TestBackpressureBytes: the count bound is left at its default (10,000),
// so only the bytes bound can pause the partition.
func TestBackpressureBytes(t *testing.T) {
	t.Parallel()
	backpressure(t, deliverer.WithMaxBufferedBytes(3*recordBytes))
}

// TestLaneSpillsByBytes: a lane in a short backoff (waited in memory) with
// more than a tenth of WithMaxBufferedBytes queued parks in retries, though
// its queue is far below a tenth of WithMaxBuffered; its records still
// arrive once and in order.
func TestLaneSpillsByBytes(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 1)
	rc, ep := e.receiverEndpoint(t, "", failing(1, 1, 500))
	e.deliver(t, ep, 0, 1, 100) // all fetched before the first attempt fails
	e.start(t, runOpts{schedule: "0s,1s,100ms", park: time.Minute,
		extra: []deliverer.Option{deliverer.WithMaxBufferedBytes(200 * recordBytes)}})
	testenv.Eventually(t, 30*time.Second, "100 deliveries", func() bool { return rc.delivered() == 100 })
	_, ok := rc.receipts()
	if dups := checkOrder(t, "spilled lane", ok, 100); dups != 0 {
		t.Errorf("%d duplicates without a crash", dups)
	}
	if n := len(parkedRecords(t, e.kafka.ReadAll(t, e.topics.Retries))); n == 0 {
		t.Error("no record went through retries: a lane holding 100 KB behind a backoff, over a tenth of the 200 KB bound, must park")
	}
}
