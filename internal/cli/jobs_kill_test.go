package cli

import (
	"context"
	"fmt"
	"net/http"
	"os/exec"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hookstream/hookstream/internal/record"
	"github.com/hookstream/hookstream/internal/testenv"
	"github.com/hookstream/hookstream/topic"
)

// TestReplayRunnerKill9 SIGKILLs the api process running a replay in the
// middle of it and starts it again: the job resumes from its last
// committed step and finishes; the endpoint gets every event of the
// window in order, and duplicates stay within one step (counted, and
// logged).
func TestReplayRunnerKill9(t *testing.T) {
	bin := testenv.Binary(t)
	k := testenv.StartKafkaProcess(t, bin)
	names := k.CreateTopics(t, topic.DefaultPrefix, topic.Partitions{Events: 3, Deliveries: 2, Other: 1})
	r := testenv.StartRedis(t)

	const n = 3000
	base := time.Now().Add(-time.Hour)
	var recs []*kgo.Record
	var ids []string
	for i := range n {
		id := fmt.Sprintf("evt_%024x", i+1)
		ids = append(ids, id)
		body := fmt.Sprintf(`{"id":%q,"event":"agent.created","timestamp":"2026-03-04T12:00:00+00:00","data":{"agent_id":"a","name":"b","model":"c","created_by":%d}}`, id, i)
		recs = append(recs, &kgo.Record{Topic: names.Events, Key: []byte(fmt.Sprintf("k%d", i%5)), Value: []byte(body),
			Timestamp: base.Add(time.Duration(i) * time.Millisecond), Headers: []kgo.RecordHeader{{Key: record.HeaderTenant, Value: []byte("acme")}}})
	}
	if err := k.Client(t).ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}

	rv := newReceiver(t)
	apiAddr := freeAddr(t)
	startAPI := func() *testenv.Process {
		return startRoleProcess(t, bin, apiAddr, "api", "--kafka-brokers", k.Addr, "--redis-url", r.URL, "--http-addr", apiAddr,
			"--api-tokens", "tok=acme", "--allow-private-destinations", "--instance-id", "api-1",
			"--session-timeout", "6s", "--log-format", "text")
	}
	api := startAPI()
	del := exec.Command(bin, "deliverer", "--kafka-brokers", k.Addr, "--redis-url", r.URL, "--http-addr", "127.0.0.1:0",
		"--allow-private-destinations", "--log-format", "text")
	del.Env = []string{"PATH=/usr/bin:/bin"}
	testenv.Start(t, del)

	apiURL := "http://" + apiAddr
	var ep struct{ ID string }
	if code := apiCall(t, http.MethodPost, apiURL+"/v1/endpoints", "tok", map[string]any{"url": rv.srv.URL, "events": []string{"agent.*"}}, &ep); code != http.StatusCreated {
		t.Fatalf("create endpoint: %d", code)
	}
	var accepted struct{ Job struct{ ID string } }
	if code := apiCall(t, http.MethodPost, apiURL+"/v1/endpoints/"+ep.ID+"/replay", "tok",
		map[string]any{"since": base.Add(-time.Minute).UTC().Format(time.RFC3339), "rate": 400}, &accepted); code != http.StatusAccepted {
		t.Fatalf("replay: %d", code)
	}
	type job struct {
		State                  string
		Total, Processed, Sent int64
	}
	get := func() job {
		var j job
		apiCall(t, http.MethodGet, apiURL+"/v1/jobs/"+accepted.Job.ID, "tok", nil, &j)
		return j
	}
	api.WaitFor(t, "the replay to be under way", time.Minute, func() bool { j := get(); return j.Sent >= 600 })
	before := get()
	api.Kill()
	if before.State != "running" || before.Sent >= n {
		t.Fatalf("killed at %+v: want a running job, part of it sent", before)
	}
	restarted := time.Now()
	api = startAPI()
	// The last state the killed runner committed, then the first step of
	// the new one.
	var j job
	api.WaitFor(t, "the job's state after the restart", time.Minute, func() bool { j = get(); return j.State != "" })
	atRestart := j.Sent
	api.WaitFor(t, "the replay to go on after the restart", time.Minute, func() bool { j = get(); return j.Sent > atRestart })
	resumed := time.Since(restarted)
	api.WaitFor(t, "the replay to end after the restart", 2*time.Minute, func() bool {
		j = get()
		return j.State == "done" || j.State == "failed" || j.State == "canceled"
	})
	if j.State != "done" || j.Sent != n {
		t.Fatalf("job after the restart: %+v, want done with %d sent", j, n)
	}
	api.WaitFor(t, "every event delivered", time.Minute, func() bool { return len(unique(rv.got())) >= n })
	time.Sleep(time.Second)
	got := rv.got()
	dups := len(got) - len(unique(got))
	t.Logf("killed at %d of %d sent (%d committed); going on %.1fs after the restart began; %d deliveries, %d duplicates", before.Sent, n, atRestart, resumed.Seconds(), len(got), dups)
	if u := unique(got); fmt.Sprint(u) != fmt.Sprint(ids) {
		t.Fatalf("endpoint got %d distinct events, want the %d in publish order", len(u), n)
	}
	// One step at 400/s every 200ms is 80 records; the job's own writes
	// are transactional, so only a step cut short could repeat.
	if dups > 80 {
		t.Fatalf("%d duplicates, want at most one step (80)", dups)
	}
}

// unique keeps the first of each id, in order.
func unique(ids []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, id := range ids {
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out
}
