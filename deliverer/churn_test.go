package deliverer_test

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/hookstream/hookstream/internal/testenv"
	"github.com/hookstream/hookstream/subscription"
)

// TestChurnKillLoop SIGKILLs and restarts one of three `hookstream
// deliverer` processes again and again while events keep coming (the
// churn that left kfake's group in PreparingRebalance for good with
// dynamic members: each join restarts its join deadline), and checks that
// every event still reaches every endpoint, in order, within 30s of the
// last restart. The members are static (--instance-id), so a restart takes
// its old place. HOOKSTREAM_CHURN_ROUNDS sets the rounds (default 6: 9s of
// churn); the loop is 12 rounds of 5s.
func TestChurnKillLoop(t *testing.T) {
	if testing.Short() {
		t.Skip("kills processes in a loop")
	}
	t.Parallel()
	rounds, every := 6, 1500*time.Millisecond
	if s := os.Getenv("HOOKSTREAM_CHURN_ROUNDS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("HOOKSTREAM_CHURN_ROUNDS=%q: want a positive number", s)
		}
		rounds, every = n, 5*time.Second
	}
	const endpoints = 12
	bin := testenv.Binary(t)
	e := newEnvOn(t, testenv.StartKafkaProcess(t, bin), 6)
	rcs := make([]*receiver, endpoints)
	eps := make([]*subscription.Endpoint, endpoints)
	for k := range endpoints {
		rcs[k] = newReceiver(t, func(int, int) int { return 200 })
		eps[k] = e.endpoint(t, rcs[k].srv.URL, "")
		rcs[k].setSecret(eps[k])
	}
	start := func(i int) *testenv.Process {
		cmd := exec.Command(bin, "deliverer",
			"--kafka-brokers", e.kafka.Addr,
			"--redis-url", e.redis.URL,
			"--topic-prefix", prefix,
			"--http-addr", "127.0.0.1:0",
			"--allow-private-destinations",
			"--instance-id", fmt.Sprintf("deliverer-%d", i),
			"--session-timeout", "3s",
			"--rebalance-timeout", "5s",
			"--retry-schedule", "0s,100ms,200ms",
			"--drain-timeout", "2s",
			"--shutdown-grace", "6s",
			"--log-format", "text",
		)
		cmd.Env = []string{"PATH=/usr/bin:/bin"}
		return testenv.Start(t, cmd)
	}
	procs := []*testenv.Process{start(0), start(1), start(2)}
	testenv.Eventually(t, 30*time.Second, "all 3 processes owning partitions", func() bool {
		for _, p := range procs {
			if !owns(p.Out.String()) {
				return false
			}
		}
		return true
	})

	events := 0
	produce := func(n int) {
		for k := range endpoints {
			e.deliver(t, eps[k], k, events+1, events+n)
		}
		events += n
	}
	produce(20)
	for r := range rounds {
		victim := r % len(procs)
		procs[victim].Kill()
		procs[victim] = start(victim)
		produce(10)
		time.Sleep(every)
	}
	last := time.Now()
	dups := allDelivered(t, 30*time.Second, "every event at every endpoint within 30s of the last restart", rcs, events)
	t.Logf("%d kill-restart rounds every %v: all %d deliveries %v after the last restart; %d duplicates",
		rounds, every, endpoints*events, time.Since(last).Round(100*time.Millisecond), dups)
	for i, p := range procs {
		if exited, err := p.Stop(syscall.SIGTERM, 15*time.Second); !exited || err != nil {
			t.Errorf("process %d after SIGTERM: exited %v, %v", i, exited, err)
		}
	}
}
