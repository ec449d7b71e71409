package deliverer_test

import (
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hookstream/hookstream/internal/testenv"
	"github.com/hookstream/hookstream/subscription"
)

// TestProcessesKill runs three `hookstream deliverer` processes on one
// `hookstream kafka` process, SIGKILLs one mid-stream, while lanes are parked in retries or
// being read back, and checks that every endpoint still got every event,
// in order.
func TestProcessesKill(t *testing.T) {
	t.Parallel()
	const endpoints, events = 20, 50
	bin := testenv.Binary(t)
	e := newEnvOn(t, testenv.StartKafkaProcess(t, bin), 6)

	rcs := make([]*receiver, endpoints)
	eps := make([]*subscription.Endpoint, endpoints)
	for k := range endpoints {
		rcs[k] = newReceiver(t, func(n, try int) int {
			time.Sleep(5 * time.Millisecond) // keep the stream going long enough to kill into
			if n == 3 && try <= 2 {
				return 500 // an in-memory retry, then the lane parks
			}
			return 200
		})
		eps[k] = e.endpoint(t, rcs[k].srv.URL, "")
		rcs[k].setSecret(eps[k])
	}

	procs := make([]*testenv.Process, 3)
	for i := range procs {
		cmd := exec.Command(bin, "deliverer",
			"--kafka-brokers", e.kafka.Addr,
			"--redis-url", e.redis.URL,
			"--topic-prefix", prefix,
			"--http-addr", "127.0.0.1:0",
			"--allow-private-destinations",
			"--session-timeout", "1500ms",
			"--rebalance-timeout", "5s",
			"--retry-schedule", "0s,100ms,200ms,400ms,800ms,1s,1s,1s,1s,1s",
			"--park-threshold", "150ms",
			"--drain-timeout", "2s",
			"--shutdown-grace", "6s",
			"--log-format", "text",
			"--log-level", "info",
		)
		cmd.Env = []string{"PATH=/usr/bin:/bin"}
		procs[i] = testenv.Start(t, cmd)
	}

	// Produce once every process owns partitions, so the kill hits work.
	testenv.Eventually(t, 30*time.Second, "all 3 processes owning partitions", func() bool {
		for _, p := range procs {
			if !owns(p.Out.String()) {
				return false
			}
		}
		return true
	})
	total := func() int {
		n := 0
		for _, rc := range rcs {
			_, ok := rc.receipts()
			n += len(ok)
		}
		return n
	}
	for k := range endpoints {
		e.deliver(t, eps[k], k, 1, events/2)
	}
	testenv.Eventually(t, 30*time.Second, "some deliveries", func() bool { return total() >= 150 })
	// Kill the process serving the most endpoints.
	part := kgo.StickyKeyPartitioner(nil).ForTopic(e.topics.Deliveries)
	victim, served := 0, -1
	for i, p := range procs {
		owned := map[int]bool{}
		for _, x := range assigned(p.Out.String()) {
			owned[x] = true
		}
		n := 0
		for _, ep := range eps {
			if owned[part.Partition(&kgo.Record{Key: []byte(ep.ID)}, 6)] {
				n++
			}
		}
		if n > served {
			victim, served = i, n
		}
	}
	// Only work after the last committed offsets is redone: what is past
	// them now bounds the duplicates (more may be committed before the
	// kill, which only loosens the bound).
	redo := int64(0)
	for _, tp := range []string{e.topics.Deliveries, e.topics.Retries} {
		committed := e.committed(t, tp)
		for p, end := range e.ends(t, tp) {
			redo += end - max(committed[p], 0)
		}
	}
	procs[victim].Kill()
	killedAt := total()
	for k := range endpoints {
		e.deliver(t, eps[k], k, events/2+1, events)
	}
	dups := allDelivered(t, 45*time.Second, "every event at every endpoint", rcs, events)
	t.Logf("killed one of 3 processes (serving %d endpoints) after %d of %d deliveries; %d duplicate deliveries, %d records past the committed offsets",
		served, killedAt, endpoints*events, dups, redo)
	if int64(dups) > redo {
		t.Errorf("%d duplicate deliveries, more than the %d records past the committed offsets at the kill", dups, redo)
	}

	for i, p := range procs {
		if i == victim {
			continue
		}
		switch exited, err := p.Stop(syscall.SIGTERM, 15*time.Second); {
		case !exited:
			t.Errorf("process %d did not stop within 15s of SIGTERM", i)
		case err != nil:
			t.Errorf("process %d after SIGTERM: %v", i, err)
		}
	}
}

// owns reports whether a deliverer's log says it holds partitions now.
func owns(log string) bool {
	return len(assigned(log)) > 0
}

var partitionsRE = regexp.MustCompile(`partitions (assigned|released)" partitions="?\[([0-9 ]*)\]"?`)

// assigned returns the partitions a deliverer holds now: the cooperative
// balancer assigns and releases some at a time, so its log is replayed.
func assigned(log string) []int {
	held := map[int]bool{}
	for _, m := range partitionsRE.FindAllStringSubmatch(log, -1) {
		for _, f := range strings.Fields(m[2]) {
			n, _ := strconv.Atoi(f)
			held[n] = m[1] == "assigned"
		}
	}
	var out []int
	for n, h := range held {
		if h {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out
}
