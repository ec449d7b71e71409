package fanout_test

import (
	"fmt"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/hookstream/hookstream/internal/record"
	"github.com/hookstream/hookstream/internal/testenv"
	"github.com/hookstream/hookstream/producer"
)

// startFanout runs `hookstream fanout` on r as an OS process of its own.
// Every process it starts has one transactional id, as a pod with a
// stable --transactional-id would: a restart's producer then aborts the
// transaction a SIGKILL left open as soon as it starts, instead of after
// --transaction-timeout. Each process had an id of its own before, and
// under CI load read_committed reads once waited out their 30 s behind
// such a transaction.
func startFanout(t *testing.T, bin string, r *rig) *testenv.Process {
	t.Helper()
	return testenv.StartProcess(t, bin, "fanout",
		"--transactional-id", "hookstream-fanout-crash-test",
		"--kafka-brokers", r.kafka.Addr,
		"--redis-url", r.redis.URL,
		"--topic-prefix", prefix,
		"--http-addr", "127.0.0.1:0",
		"--session-timeout", "2s",
		"--rebalance-timeout", "3s",
		"--transaction-timeout", "3s",
		"--max-batch", "50",
		"--shutdown-grace", "10s",
		"--log-format", "text",
	)
}

// TestCrashExactlyOnce SIGKILLs `hookstream fanout` mid-stream and restarts
// it: every (event, endpoint) pair must be committed exactly once.
func TestCrashExactlyOnce(t *testing.T) {
	t.Parallel()
	bin := testenv.Binary(t)
	r := newRig(t, 4)
	ctx := ctxFor(t, 3*time.Minute)
	eps := []string{
		r.endpoint(t, "acme", "*"),
		r.endpoint(t, "acme", "agent.*"),
		r.endpoint(t, "acme", "agent.created"),
	}
	const n, chunk = 3000, 20
	var ids []string
	publish := func(from, to int) {
		for i := from; i < to; i += chunk {
			var batch []producer.Event
			for j := i; j < i+chunk; j++ {
				batch = append(batch, producer.Event{
					Type: "agent.created", Data: r.example(t, "agent.created"),
					ID: fmt.Sprintf("evt-%05d", j), Key: "k" + strconv.Itoa(j%8),
				})
			}
			got, err := r.pub.PublishBatch(ctx, "acme", batch)
			if err != nil {
				t.Error(err)
				return
			}
			ids = append(ids, got...)
			time.Sleep(2 * time.Millisecond)
		}
	}

	// The first half of the stream is published while the first process
	// runs; it is killed once a quarter of the stream is committed.
	first := startFanout(t, bin, r)
	published := make(chan struct{})
	go func() { defer close(published); publish(0, n/2) }()
	var atKill int64
	for deadline := time.Now().Add(time.Minute); ; {
		if atKill = r.committed(t); atKill >= n/4 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("fanout committed only %d events in a minute", atKill)
		}
		time.Sleep(2 * time.Millisecond)
	}
	first.Kill()
	<-published
	// The restart comes before any read: its producer, with the killed
	// one's transactional id (startFanout), aborts the transaction the
	// kill left open.
	second := startFanout(t, bin, r)
	committedAtKill := len(r.deliveries(t))
	t.Logf("SIGKILLed fanout after it committed %d of %d events (%d of %d deliveries committed by the restart)",
		atKill, n, committedAtKill, n*len(eps))
	if committedAtKill == 0 || committedAtKill >= n*len(eps) {
		t.Fatalf("the kill was not mid-stream: %d of %d deliveries committed", committedAtKill, n*len(eps))
	}

	// The rest of the stream goes to the restarted process.
	publish(n/2, n)
	if t.Failed() {
		return
	}
	r.waitProcessed(t)
	// The killed process's open transaction (if any) holds back
	// read_committed readers until its timeout aborts it.
	var ds []delivery
	for deadline := time.Now().Add(30 * time.Second); ; {
		if ds = r.deliveries(t); len(ds) >= n*len(eps) || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}

	got := pairs(ds)
	var missing, dups int
	for _, id := range ids {
		for _, ep := range eps {
			switch c := got[pair(id, ep)]; {
			case c == 0:
				missing++
			case c > 1:
				dups += c - 1
			}
		}
	}
	if missing > 0 || dups > 0 || len(ds) != n*len(eps) {
		t.Fatalf("after the crash: %d deliveries for %d events x %d endpoints: %d missing, %d duplicated", len(ds), len(ids), len(eps), missing, dups)
	}
	// The delivery log's records, written in the same transactions, are
	// exactly once too: one per event.
	matches := map[string]int{}
	for _, rec := range r.kafka.ReadAll(t, r.names.Matches) {
		m, err := record.ParseMatch(rec)
		if err != nil {
			t.Fatal(err)
		}
		matches[m.EventID]++
		if len(m.Endpoints) != len(eps) {
			t.Fatalf("match record of %s names %v, want the %d endpoints", m.EventID, m.Endpoints, len(eps))
		}
	}
	for _, id := range ids {
		if matches[id] != 1 {
			t.Fatalf("after the crash: %d match records of %s, want 1", matches[id], id)
		}
	}
	// Per endpoint and ordering key, events arrive in publish order.
	last := map[string]string{}
	for _, d := range ds {
		k := d.EndpointID + "/" + strconv.Itoa(keyOf(d.EventID))
		if prev := last[k]; prev != "" && prev > d.EventID {
			t.Fatalf("endpoint %s got %s after %s", d.EndpointID, d.EventID, prev)
		}
		last[k] = d.EventID
	}

	// SIGTERM: the restarted process ends its transaction, leaves the
	// group and exits cleanly.
	switch exited, err := second.Stop(syscall.SIGTERM, 20*time.Second); {
	case !exited:
		t.Fatal("fanout did not exit within 20s of SIGTERM")
	case err != nil:
		t.Fatalf("after SIGTERM: %v", err)
	}
}

// keyOf is the ordering key an event id of this test was published with.
func keyOf(id string) int {
	n, _ := strconv.Atoi(id[len("evt-"):])
	return n % 8
}
