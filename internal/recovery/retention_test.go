package recovery_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hookstream/hookstream/internal/record"
	"github.com/hookstream/hookstream/internal/recovery"
	"github.com/hookstream/hookstream/internal/testenv"
)

// TestFinishedJobsExpire: a finished job stays listed for the retention,
// then the runner writes tombstones for its state, plan and cancel
// records (so compaction drops them) and no process lists it any more; a
// running job stays.
func TestFinishedJobsExpire(t *testing.T) {
	const retention = 4 * time.Second
	e := newEnv(t)
	if err := e.stopSv(); err != nil {
		t.Fatal(err)
	}
	e.tweak = func(c *recovery.Config) { c.Retention = retention }
	e.start(t)
	ep := e.endpoint(t, "acme", "*")
	e.publish(t, 2000, time.Now().Add(-time.Hour))

	// A resend job, with a plan record, and a canceled replay.
	d := record.Delivery{EndpointID: ep, Tenant: "acme", EventID: fmt.Sprintf("evt_%024x", 1), EventType: "agent.created",
		Body: []byte(`{"id":"evt_000000000000000000000001","event":"agent.created","timestamp":"2026-03-04T12:00:00+00:00","data":{}}`)}
	rec := d.Record(e.names.Deliveries)
	if err := e.cl.ProduceSync(context.Background(), rec).FirstErr(); err != nil {
		t.Fatal(err)
	}
	submit := func(j recovery.Job, plan []recovery.Item) recovery.Job {
		t.Helper()
		out, _, err := e.svc.Submit(context.Background(), j, plan)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	resend := submit(recovery.Job{Tenant: "acme", Kind: recovery.KindResend, EventID: d.EventID, IdempotencyKey: "k"},
		[]recovery.Item{{EndpointID: ep, Partition: rec.Partition, Offset: rec.Offset}})
	canceled := submit(recovery.Job{Tenant: "acme", Kind: recovery.KindReplay, EndpointID: ep, Since: time.Now().Add(-2 * time.Hour), Rate: 1}, nil)
	running := submit(recovery.Job{Tenant: "acme", Kind: recovery.KindReplay, EndpointID: ep, Since: time.Now().Add(-2 * time.Hour), Rate: 1}, nil)
	e.waitState(t, "acme", resend.ID, 30*time.Second, recovery.StateDone)
	e.waitState(t, "acme", canceled.ID, 30*time.Second, recovery.StateRunning)
	if _, err := e.svc.Cancel(context.Background(), "acme", canceled.ID); err != nil {
		t.Fatal(err)
	}
	e.waitState(t, "acme", canceled.ID, 30*time.Second, recovery.StateCanceled)
	if jobs, _, _ := e.svc.List("acme", "", 10); len(jobs) != 3 {
		t.Fatalf("%d jobs listed right after two finished, want 3 (kept for the retention)", len(jobs))
	}

	testenv.Eventually(t, 30*time.Second, "the finished jobs to be removed", func() bool {
		jobs, _, _ := e.svc.List("acme", "", 10)
		return len(jobs) == 1 && jobs[0].ID == running.ID
	})
	if j, err := e.svc.Get("acme", resend.ID); err == nil {
		t.Fatalf("expired job still answers Get: %+v", j)
	}
	// What compaction keeps of the jobs topic: the last record per key.
	last := map[string]*kgo.Record{}
	for _, r := range e.k.ReadAll(t, e.names.Jobs) {
		last[string(r.Key)] = r
	}
	for _, key := range []string{resend.ID, resend.ID + "/plan/0", canceled.ID, canceled.ID + "/cancel"} {
		if r, ok := last[key]; !ok || r.Value != nil {
			t.Errorf("record %s: %v, want a tombstone last", key, r)
		}
	}
	if r := last[running.ID]; r == nil || r.Value == nil {
		t.Errorf("the running job's record is gone")
	}
	// A new process reads the topic: it lists only the running job, and
	// the expired job's idempotency key starts a new job.
	if err := e.stopSv(); err != nil {
		t.Fatal(err)
	}
	e.start(t)
	if jobs, _, _ := e.svc.List("acme", "", 10); len(jobs) != 1 || jobs[0].ID != running.ID {
		t.Fatalf("after a restart: %+v, want the running job alone", jobs)
	}
	again, existing, err := e.svc.Submit(context.Background(), recovery.Job{Tenant: "acme", Kind: recovery.KindResend, EventID: d.EventID, IdempotencyKey: "k"},
		[]recovery.Item{{EndpointID: ep, Partition: rec.Partition, Offset: rec.Offset}})
	if err != nil || existing {
		t.Fatalf("the removed job's key: %+v existing=%v err=%v, want a new job", again, existing, err)
	}
}
