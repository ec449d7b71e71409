package deliverer_test

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hookstream/hookstream/deliverer"
	"github.com/hookstream/hookstream/internal/testenv"
	"github.com/hookstream/hookstream/subscription"
)

// TestHungLanesDoNotHoldThePartition: one tenant's endpoints hang (their
// requests stay in flight until the test releases them) while their
// records keep arriving, more of them than the partition may hold in
// memory. Their queues go to retries, so the partition keeps fetching and
// another tenant's deliveries arrive long before the hung requests would
// time out; once released, every hung record arrives in order, once.
// Without the spill the partition stopped fetching at its byte bound and
// the other tenant waited for the request timeout.
func TestHungLanesDoNotHoldThePartition(t *testing.T) {
	t.Parallel()
	const (
		hung    = 4
		perHung = 150
		others  = 50
	)
	e := newEnv(t, 1) // one partition: every lane in one worker
	h := e.hungEndpoints(t, hung, func(i, n, try int) int {
		// Half the hung heads fail once: their copies in retries carry
		// the attempt and go first all the same.
		if i%2 == 1 && n == 1 && try == 1 {
			return 500
		}
		return 200
	})
	holes, holeEps := h.receivers, h.endpoints
	b := newReceiver(t, nil)
	other, err := e.store.Create(ctxFor(t, 30*time.Second), "tenant-b", subscription.EndpointInput{URL: b.srv.URL, Events: []string{"*"}})
	if err != nil {
		t.Fatal(err)
	}
	b.setSecret(other)
	// A 64 KiB partition bound: the hung lanes' queues (about 180 KiB)
	// would fill it three times over.
	e.start(t, runOpts{timeout: 60 * time.Second, extra: []deliverer.Option{deliverer.WithMaxBufferedBytes(64 << 10)}})
	for i, ep := range holeEps {
		e.deliver(t, ep, 10+i, 1, perHung)
	}
	// Fetched, held behind their hung heads, and over the bound.
	testenv.Eventually(t, 30*time.Second, "every hung lane's head in flight", func() bool { return h.waiting.Load() >= hung })
	time.Sleep(500 * time.Millisecond)
	e.deliver(t, other, 1, 1, others)
	testenv.Eventually(t, 20*time.Second, "the other tenant's deliveries beside hung lanes", func() bool { return b.delivered() == others })
	_, ok := b.receipts()
	checkOrder(t, "other tenant", ok, others)

	h.release()
	for i, rc := range holes {
		testenv.Eventually(t, 60*time.Second, "hung endpoint's deliveries after release", func() bool { return rc.delivered() == perHung })
		_, ok := rc.receipts()
		all, _ := rc.receipts()
		if i%2 == 1 && (len(all) < 2 || all[0] != 1 || all[1] != 1) {
			t.Errorf("hung endpoint %d: first requests %v, want event 1 failed then retried first", i, all[:min(len(all), 3)])
		}
		if dups := checkOrder(t, "hung endpoint", ok, perHung); dups != 0 {
			t.Errorf("hung endpoint %d got %d duplicates without any crash", i, dups)
		}
	}
	e.settled(t)
}

// TestHungLanesSpillAcrossRestart: the deliverer stops while spilled
// lanes' heads still hang; the next one delivers every record of them, in
// order of first delivery (the restart may send some twice).
func TestHungLanesSpillAcrossRestart(t *testing.T) {
	t.Parallel()
	const (
		hung    = 3
		perHung = 100
	)
	e := newEnv(t, 1)
	h := e.hungEndpoints(t, hung, func(int, int, int) int { return 200 })
	holes, holeEps := h.receivers, h.endpoints
	opts := runOpts{park: 2 * time.Second, timeout: 60 * time.Second, extra: []deliverer.Option{deliverer.WithMaxBufferedBytes(16 << 10)}}
	stop := e.start(t, opts)
	for i, ep := range holeEps {
		e.deliver(t, ep, 10+i, 1, perHung)
	}
	testenv.Eventually(t, 30*time.Second, "every hung lane's head in flight", func() bool { return h.waiting.Load() >= hung })
	// Spilled: the retries topic holds each lane's marker, copy and queue.
	testenv.Eventually(t, 30*time.Second, "the hung lanes' queues in retries", func() bool {
		var n int64
		for _, end := range e.ends(t, e.topics.Retries) {
			n += end
		}
		return n >= hung*perHung
	})
	stop()
	e.start(t, opts)
	h.release()
	for i, rc := range holes {
		testenv.Eventually(t, 60*time.Second, "hung endpoint's deliveries after the restart", func() bool { return rc.delivered() == perHung })
		_, ok := rc.receipts()
		dups := checkOrder(t, "hung endpoint", ok, perHung)
		t.Logf("hung endpoint %d: %d duplicates after the restart", i, dups)
	}
	e.settled(t)
}

// hung is n endpoints whose receivers hold every request until release,
// then answer what answer says for endpoint i.
type hung struct {
	receivers []*receiver
	endpoints []*subscription.Endpoint
	waiting   atomic.Int64 // requests received, held or answered
	release   func()
}

func (e *env) hungEndpoints(t *testing.T, n int, answer func(i, n, try int) int) *hung {
	t.Helper()
	gate := make(chan struct{})
	h := &hung{release: sync.OnceFunc(func() { close(gate) })}
	for i := range n {
		rc, ep := e.receiverEndpoint(t, "", func(n, try int) int {
			h.waiting.Add(1)
			<-gate
			return answer(i, n, try)
		})
		h.receivers, h.endpoints = append(h.receivers, rc), append(h.endpoints, ep)
	}
	// After the receivers' own cleanups, so it runs first: a server
	// closes only once its held requests are answered.
	t.Cleanup(h.release)
	return h
}
