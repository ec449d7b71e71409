package deliverer_test

import (
	"fmt"
	"os"
	"os/exec"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hookstream/hookstream/internal/record"
	"github.com/hookstream/hookstream/internal/testenv"
	"github.com/hookstream/hookstream/producer"
	"github.com/hookstream/hookstream/subscription"
)

// availability is the whole pipeline as processes: `hookstream fanout`
// and `hookstream deliverer` replicas with static instance ids on one
// `hookstream kafka`, one tenant per endpoint publishing an event every
// tick, and receivers noting when each event arrives, for measuring how
// long a crash or a restart stops deliveries.
type availability struct {
	t    *testing.T
	bin  string
	e    *env
	pub  *producer.Producer
	rcs  []*receiver
	eps  []*subscription.Endpoint
	part []int32 // deliveries partition of each endpoint

	mu       sync.Mutex
	arrivals [][]time.Time // per endpoint, every 2xx
	procs    map[string]*testenv.Process
	events   int // published per tenant

	dynamic bool // no --instance-id
	leave   bool // --leave-on-shutdown

	stopPub chan struct{}
	pubDone chan struct{}
}

const (
	availEndpoints  = 12
	availPartitions = 6
	availTick       = 50 * time.Millisecond
)

// availSession is the session timeout of every member
// (HOOKSTREAM_AVAILABILITY_SESSION overrides it).
var availSession = 3 * time.Second

func newAvailability(t *testing.T) *availability {
	bin := testenv.Binary(t)
	e := newEnvOn(t, testenv.StartKafkaProcess(t, bin), availPartitions)
	// Events on as many partitions as deliveries, so both fanouts work.
	if _, err := kadm.NewClient(e.client).CreatePartitions(ctxFor(t, 30*time.Second), availPartitions-1, e.topics.Events); err != nil {
		t.Fatalf("events partitions: %v", err)
	}
	a := &availability{t: t, bin: bin, e: e, procs: map[string]*testenv.Process{},
		pub: producer.New(e.client, e.catalog, producer.WithTopicPrefix(prefix))}
	a.arrivals = make([][]time.Time, availEndpoints)
	hash := kgo.StickyKeyPartitioner(nil).ForTopic(e.topics.Deliveries)
	for k := range availEndpoints {
		rc := newReceiver(t, func(int, int) int {
			a.mu.Lock()
			a.arrivals[k] = append(a.arrivals[k], time.Now())
			a.mu.Unlock()
			return 200
		})
		ep, err := e.store.Create(ctxFor(t, 30*time.Second), tenantOf(k), subscription.EndpointInput{URL: rc.srv.URL, Events: []string{"*"}})
		if err != nil {
			t.Fatalf("create endpoint: %v", err)
		}
		rc.setSecret(ep)
		a.rcs, a.eps = append(a.rcs, rc), append(a.eps, ep)
		a.part = append(a.part, int32(hash.Partition(&kgo.Record{Key: []byte(ep.ID)}, availPartitions)))
	}
	return a
}

func tenantOf(k int) string { return fmt.Sprintf("t%02d", k) }

func (a *availability) args(role, id string) []string {
	args := []string{role,
		"--kafka-brokers", a.e.kafka.Addr,
		"--redis-url", a.e.redis.URL,
		"--topic-prefix", prefix,
		"--http-addr", "127.0.0.1:0",
		"--session-timeout", availSession.String(),
		"--rebalance-timeout", max(5*time.Second, availSession).String(),
		"--shutdown-grace", "6s",
		"--log-format", "text",
	}
	if !a.dynamic {
		args = append(args, "--instance-id", id)
	}
	if a.leave {
		args = append(args, "--leave-on-shutdown")
	}
	if role == "deliverer" {
		args = append(args, "--allow-private-destinations", "--retry-schedule", "0s,100ms,200ms", "--drain-timeout", "2s")
	}
	return args
}

// start runs role as a process with instance id id.
func (a *availability) start(role, id string) *testenv.Process {
	cmd := exec.Command(a.bin, a.args(role, id)...)
	cmd.Env = []string{"PATH=/usr/bin:/bin"}
	p := testenv.Start(a.t, cmd)
	a.procs[id] = p
	return p
}

// publishing publishes event n+1, n+2... of every tenant each tick until
// stopPublishing.
func (a *availability) publishing() {
	a.stopPub, a.pubDone = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(a.pubDone)
		tick := time.NewTicker(availTick)
		defer tick.Stop()
		for {
			select {
			case <-a.stopPub:
				return
			case <-tick.C:
			}
			n := a.events + 1
			for k := range availEndpoints {
				data := fmt.Appendf(nil, `{"agent_id":"a","name":"x","model":"m","created_by":1,"n":%d}`, n)
				if _, err := a.pub.Publish(ctxFor(a.t, 30*time.Second), tenantOf(k), "agent.created", data, producer.WithID(eventID(k, n))); err != nil {
					a.t.Errorf("publish: %v", err)
					return
				}
			}
			a.mu.Lock()
			a.events = n
			a.mu.Unlock()
		}
	}()
}

// finish stops publishing and checks every event reached every endpoint
// in order; it returns the duplicates.
func (a *availability) finish() int {
	close(a.stopPub)
	<-a.pubDone
	return allDelivered(a.t, 60*time.Second, "every event at every endpoint", a.rcs, a.events)
}

// duplicateRecords counts the (endpoint, event) pairs the fanouts wrote
// more than one delivery record for: a receiver's duplicates with none
// here are the deliverers' redeliveries.
func (a *availability) duplicateRecords() int {
	seen, n := map[string]int{}, 0
	for _, r := range a.e.kafka.ReadAll(a.t, a.e.topics.Deliveries) {
		k := string(r.Key) + " " + header(r, record.HeaderEventID)
		if seen[k]++; seen[k] == 2 {
			n++
		}
	}
	return n
}

// gaps returns per endpoint the longest time without a delivery from
// `from` until `to`, counting from the last delivery before from.
func (a *availability) gaps(from, to time.Time) []time.Duration {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]time.Duration, availEndpoints)
	for k, ts := range a.arrivals {
		prev := time.Time{}
		for _, at := range ts {
			if at.Before(from) {
				prev = at
				continue
			}
			if at.After(to) {
				break
			}
			if !prev.IsZero() {
				out[k] = max(out[k], at.Sub(prev))
			}
			prev = at
		}
		if !prev.IsZero() && to.Sub(prev) > out[k] {
			out[k] = to.Sub(prev)
		}
	}
	return out
}

// resumed returns per endpoint how long after at its first delivery came.
func (a *availability) resumed(at time.Time) []time.Duration {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]time.Duration, availEndpoints)
	for k, ts := range a.arrivals {
		out[k] = -1
		for _, x := range ts {
			if x.After(at) {
				out[k] = x.Sub(at)
				break
			}
		}
	}
	return out
}

// owner returns the deliverer instance id holding partition p, from the
// processes' logs.
func (a *availability) owner(p int32) string {
	for id, proc := range a.procs {
		if slices.Contains(assigned(proc.Out.String()), int(p)) {
			return id
		}
	}
	return ""
}

// up starts fanouts f-0..f-(nf-1) and deliverers d-0..d-(nd-1), waits until
// every deliverer holds partitions and deliveries flow, and starts
// publishing.
func (a *availability) up(nf, nd int) {
	for i := range nf {
		a.start("fanout", fmt.Sprintf("f-%d", i))
	}
	var ds []*testenv.Process
	for i := range nd {
		ds = append(ds, a.start("deliverer", fmt.Sprintf("d-%d", i)))
	}
	testenv.Eventually(a.t, time.Minute, "every deliverer holding partitions", func() bool {
		for _, p := range ds {
			if !owns(p.Out.String()) {
				return false
			}
		}
		return true
	})
	a.publishing()
	testenv.Eventually(a.t, time.Minute, "deliveries flowing", func() bool {
		for _, r := range a.resumed(time.Now().Add(-time.Second)) {
			if r < 0 {
				return false
			}
		}
		return true
	})
}

func maxOf(ds []time.Duration) time.Duration {
	m := time.Duration(0)
	for _, d := range ds {
		m = max(m, d)
	}
	return m
}

func ms(d time.Duration) string { return d.Round(10 * time.Millisecond).String() }

// TestAvailability measures what a crash or a restart costs deliveries
// (times are logged, not asserted: they depend on the machine) and checks
// that every event still arrives, in order, and that a rolling SIGTERM
// restart duplicates nothing. HOOKSTREAM_AVAILABILITY=1 runs it.
func TestAvailability(t *testing.T) {
	if os.Getenv("HOOKSTREAM_AVAILABILITY") == "" {
		t.Skip("measurements: set HOOKSTREAM_AVAILABILITY=1")
	}
	if s := os.Getenv("HOOKSTREAM_AVAILABILITY_SESSION"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			t.Fatalf("HOOKSTREAM_AVAILABILITY_SESSION: %v", err)
		}
		availSession = d
	}
	const watch = 12 * time.Second
	for _, restart := range []string{"none", "same id", "new id"} {
		t.Run("kill -9 one deliverer of three, restart "+restart, func(t *testing.T) {
			a := newAvailability(t)
			a.up(2, 3)
			time.Sleep(2 * time.Second)
			victim := "d-1"
			var dead, alive []int
			for k, p := range a.part {
				if a.owner(p) == victim {
					dead = append(dead, k)
				} else {
					alive = append(alive, k)
				}
			}
			kill := time.Now()
			a.procs[victim].Kill()
			switch restart {
			case "same id":
				a.start("deliverer", victim)
			case "new id":
				delete(a.procs, victim)
				a.start("deliverer", "d-9")
			}
			time.Sleep(watch)
			gaps, res := a.gaps(kill.Add(-time.Second), time.Now()), a.resumed(kill)
			var survivors, deadRes []time.Duration
			for _, k := range alive {
				survivors = append(survivors, gaps[k])
			}
			for _, k := range dead {
				deadRes = append(deadRes, res[k])
			}
			dups := a.finish()
			t.Logf("restart %s: the survivors' %d endpoints: longest gap %s; the dead member's %d endpoints resumed after %s at the latest (session timeout %v); %d duplicates",
				restart, len(alive), ms(maxOf(survivors)), len(dead), ms(maxOf(deadRes)), availSession, dups)
		})
	}
	for _, restart := range []bool{false, true} {
		t.Run(fmt.Sprintf("kill -9 one fanout of two, restart %v", restart), func(t *testing.T) {
			a := newAvailability(t)
			a.up(2, 2)
			time.Sleep(2 * time.Second)
			kill := time.Now()
			a.procs["f-1"].Kill()
			if restart {
				a.start("fanout", "f-1")
			}
			time.Sleep(watch)
			gaps := a.gaps(kill.Add(-time.Second), time.Now())
			dups := a.finish()
			slow := 0
			for _, g := range gaps {
				if g > time.Second {
					slow++
				}
			}
			t.Logf("fanout killed (restart %v): longest gap %s; %d of %d endpoints had a gap over 1s; %d duplicates",
				restart, ms(maxOf(gaps)), slow, availEndpoints, dups)
		})
	}
	for _, dynamic := range []bool{true, false} {
		t.Run(fmt.Sprintf("SIGTERM one fanout of two, dynamic %v", dynamic), func(t *testing.T) {
			a := newAvailability(t)
			a.dynamic = dynamic
			a.up(2, 2)
			time.Sleep(2 * time.Second)
			stop := time.Now()
			if exited, err := a.procs["f-1"].Stop(syscall.SIGTERM, 15*time.Second); !exited || err != nil {
				t.Errorf("f-1 after SIGTERM: exited %v, %v", exited, err)
			}
			a.start("fanout", "f-1")
			time.Sleep(watch)
			gaps := a.gaps(stop.Add(-time.Second), time.Now())
			dups := a.finish()
			t.Logf("fanout SIGTERM and restart (dynamic %v): longest gap %s (per endpoint %v); %d duplicates", dynamic, ms(maxOf(gaps)), gaps, dups)
		})
	}
	// A Deployment's rollout: every replacement has a new name, so a new
	// instance id; with and without --leave-on-shutdown.
	for _, v := range []struct {
		name   string
		rename bool
		leave  bool
		exact  bool // 0 duplicates asserted
	}{
		{"same names", false, false, true},
		// What the README advises against: a static member that is not
		// coming back holds its partitions until its session times out,
		// and the rebalance that follows cost redeliveries.
		{"new names", true, false, false},
		{"new names, --leave-on-shutdown", true, true, true},
	} {
		t.Run("rolling SIGTERM restart of every role, "+v.name, func(t *testing.T) {
			a := newAvailability(t)
			a.leave = v.leave
			a.up(2, 2)
			time.Sleep(2 * time.Second)
			begin := time.Now()
			for _, id := range []string{"f-0", "f-1", "d-0", "d-1"} {
				role := "fanout"
				if id[0] == 'd' {
					role = "deliverer"
				}
				stop := time.Now()
				if exited, err := a.procs[id].Stop(syscall.SIGTERM, 15*time.Second); !exited || err != nil {
					t.Errorf("%s after SIGTERM: exited %v, %v", id, exited, err)
				}
				stopped := time.Since(stop)
				next := id
				if v.rename {
					delete(a.procs, id)
					next = id + "-new"
				}
				p := a.start(role, next)
				p.WaitOutput(t, role+" starting", 30*time.Second)
				if role == "deliverer" {
					p.WaitFor(t, id+" holding partitions", 30*time.Second, func() bool { return owns(p.Out.String()) })
				}
				t.Logf("%s: stopped in %s, back after %s", id, ms(stopped), ms(time.Since(stop)))
				time.Sleep(3 * time.Second)
			}
			gaps := a.gaps(begin, time.Now())
			dups := a.finish()
			t.Logf("rolling restart, %s: longest gap %s (per endpoint %v); %d duplicates", v.name, ms(maxOf(gaps)), gaps, dups)
			if n := a.duplicateRecords(); n != 0 {
				t.Errorf("rolling restart: %d (event, endpoint) pairs have more than one delivery record, want none", n)
			}
			if dups != 0 && v.exact {
				t.Errorf("rolling restart: %d duplicates, want 0", dups)
			}
		})
	}
}
