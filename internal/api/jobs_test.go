package api_test

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hookstream/hookstream/internal/api"
	"github.com/hookstream/hookstream/internal/deliverylog"
	"github.com/hookstream/hookstream/internal/recovery"
	"github.com/hookstream/hookstream/internal/testenv"
	"github.com/hookstream/hookstream/subscription"
	"github.com/hookstream/hookstream/topic"
)

// lazyJobs lets the test build the jobs service on the stack's Kafka after
// the stack started.
type lazyJobs struct{ *recovery.Service }

// jobsStack is the API with the jobs service and the delivery log, and
// one endpoint of tenant acme.
func jobsStack(t *testing.T) (base, ep string) {
	t.Helper()
	base, ep, _ = jobsStackWith(t)
	return base, ep
}

// jobsStackWith is jobsStack with more options, answering the delivery
// log's index too.
func jobsStackWith(t *testing.T, opts ...api.Option) (base, ep string, ix *deliverylog.Index) {
	t.Helper()
	jobs, lg := &lazyJobs{}, &lazyLog{}
	st := startEndpointsAPI(t, append(opts, api.WithJobs(jobs, lg), api.WithDeliveryLog(lg))...)
	lg.Index = deliverylog.NewIndex(st.redis.Client, 0)
	store := subscription.NewStore(st.kafka.Client(t), st.redis.Client, st.cat, subscription.WithLogger(quiet))
	testenv.Run(t, store)
	svc, err := recovery.New(recovery.Config{Topics: topic.New(topic.DefaultPrefix), ClientOpts: []kgo.Opt{kgo.SeedBrokers(st.kafka.Addr)},
		Endpoints: store, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(svc.Close)
	testenv.Run(t, svc)
	<-svc.Loaded()
	jobs.Service = svc
	var e epView
	epDo(t, "POST", st.base+"/v1/endpoints", "tok-acme", epCreateBody).decode(t, &e)
	return st.base, e.ID, lg.Index
}

// jobDo is epDo with an Idempotency-Key.
func jobDo(t *testing.T, method, url, token, key, body string) (epReply, http.Header) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	checkExchange(t, req, body, resp.StatusCode, b)
	return epReply{resp.StatusCode, b}, resp.Header
}

func TestJobsRoutesRefuseBadInput(t *testing.T) {
	base, ep := jobsStack(t)
	since := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)
	for _, c := range []struct {
		name, path, token, body string
		status                  int
		field                   string
	}{
		{"replay without since", "/v1/endpoints/" + ep + "/replay", "tok-acme", `{}`, 422, "/since"},
		{"replay with a bad since", "/v1/endpoints/" + ep + "/replay", "tok-acme", `{"since":"yesterday"}`, 422, "/since"},
		{"replay until before since", "/v1/endpoints/" + ep + "/replay", "tok-acme", `{"since":"` + since + `","until":"2000-01-01T00:00:00Z"}`, 422, "/until"},
		{"replay of an unknown type", "/v1/endpoints/" + ep + "/replay", "tok-acme", `{"since":"` + since + `","types":["agent.created","nope"]}`, 422, "/types/1"},
		{"replay too fast", "/v1/endpoints/" + ep + "/replay", "tok-acme", `{"since":"` + since + `","rate":1000000}`, 422, "/rate"},
		{"replay with an unknown field", "/v1/endpoints/" + ep + "/replay", "tok-acme", `{"since":"` + since + `","x":1}`, 422, "/x"},
		{"replay to another tenant's endpoint", "/v1/endpoints/" + ep + "/replay", "tok-other", `{"since":"` + since + `"}`, 404, ""},
		{"recover without since", "/v1/endpoints/" + ep + "/recover", "tok-acme", `{}`, 422, "/since"},
		{"test of an unknown type", "/v1/endpoints/" + ep + "/test", "tok-acme", `{"event":"nope"}`, 422, "/event"},
		{"test with data breaking the schema", "/v1/endpoints/" + ep + "/test", "tok-acme", `{"event":"agent.created","data":{"agent_id":1,"name":"b","model":"c","created_by":1}}`, 422, "/data/agent_id"},
		{"resend of an unknown event", "/v1/events/evt_000000000000000000000000/resend", "tok-acme", `{}`, 404, ""},
		{"an unknown job", "/v1/jobs/job_000000000000000000000000/cancel", "tok-acme", ``, 404, ""},
		// "-": a GET.
		{"jobs listed after a cursor that names no job", "/v1/jobs?cursor=garbage", "tok-acme", "-", 400, "/cursor"},
	} {
		t.Run(c.name, func(t *testing.T) {
			method := "POST"
			if c.body == "-" {
				method, c.body = "GET", ""
			}
			r, _ := jobDo(t, method, base+c.path, c.token, "", c.body)
			var e struct{ Error struct{ Code, Field string } }
			r.decode(t, &e)
			if r.status != c.status || e.Error.Field != c.field {
				t.Fatalf("%d %s, want %d naming %q", r.status, r.body, c.status, c.field)
			}
		})
	}
}

func TestJobsRoutes(t *testing.T) {
	base, ep := jobsStack(t)
	since := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)

	r, _ := jobDo(t, "POST", base+"/v1/endpoints/"+ep+"/replay", "tok-acme", "", `{"since":"`+since+`","dry_run":true}`)
	var dry struct {
		Count  int64
		Sample []any
	}
	r.decode(t, &dry)
	if r.status != 200 || dry.Count != 0 || dry.Sample == nil {
		t.Fatalf("dry run: %d %s, want 200 with count 0 and an empty sample", r.status, r.body)
	}

	type accepted struct {
		Job struct{ ID, State, Kind string }
	}
	var a, b accepted
	r, h := jobDo(t, "POST", base+"/v1/endpoints/"+ep+"/replay", "tok-acme", "k-1", `{"since":"`+since+`","rate":1}`)
	r.decode(t, &a)
	if r.status != 202 || a.Job.Kind != "replay" || !strings.HasPrefix(a.Job.ID, "job_") || h.Get("Idempotent-Replayed") != "" {
		t.Fatalf("replay: %d %s", r.status, r.body)
	}
	r, h = jobDo(t, "POST", base+"/v1/endpoints/"+ep+"/replay", "tok-acme", "k-1", `{"since":"`+since+`","rate":1}`)
	r.decode(t, &b)
	if r.status != 202 || b.Job.ID != a.Job.ID || h.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("repeated key: %d %s, want job %s again", r.status, r.body, a.Job.ID)
	}
	var list struct{ Data []struct{ ID string } }
	epDo(t, "GET", base+"/v1/jobs", "tok-acme", "").decode(t, &list)
	if len(list.Data) != 1 || list.Data[0].ID != a.Job.ID {
		t.Fatalf("jobs list %+v, want the one job", list)
	}
	if r := epDo(t, "GET", base+"/v1/jobs/"+a.Job.ID, "tok-other", ""); r.status != 404 {
		t.Fatalf("another tenant's job: %d, want 404", r.status)
	}
	if r := epDo(t, "POST", base+"/v1/jobs/"+a.Job.ID+"/cancel", "tok-acme", ""); r.status != 202 {
		t.Fatalf("cancel: %d %s", r.status, r.body)
	}
	testenv.Eventually(t, 30*time.Second, "the job canceled", func() bool {
		var j struct{ State string }
		epDo(t, "GET", base+"/v1/jobs/"+a.Job.ID, "tok-acme", "").decode(t, &j)
		return j.State == "canceled"
	})
	if r := epDo(t, "POST", base+"/v1/jobs/"+a.Job.ID+"/cancel", "tok-acme", ""); r.status != 409 {
		t.Fatalf("cancel of an ended job: %d, want 409", r.status)
	}

	// A disabled endpoint is recovered only when the body enables it.
	if r := epDo(t, "PATCH", base+"/v1/endpoints/"+ep, "tok-acme", `{"disabled":true}`); r.status != 200 {
		t.Fatalf("disable: %d", r.status)
	}
	r, _ = jobDo(t, "POST", base+"/v1/endpoints/"+ep+"/recover", "tok-acme", "", `{"since":"`+since+`"}`)
	if r.status != 409 {
		t.Fatalf("recover of a disabled endpoint: %d %s, want 409", r.status, r.body)
	}
	r, _ = jobDo(t, "POST", base+"/v1/endpoints/"+ep+"/recover", "tok-acme", "", `{"since":"`+since+`","enable":true}`)
	var e struct{ Disabled bool }
	epDo(t, "GET", base+"/v1/endpoints/"+ep, "tok-acme", "").decode(t, &e)
	if r.status != 202 || e.Disabled {
		t.Fatalf("recover with enable: %d %s, endpoint disabled=%v", r.status, r.body, e.Disabled)
	}

	var sent struct {
		EventID string `json:"event_id"`
	}
	r, _ = jobDo(t, "POST", base+"/v1/endpoints/"+ep+"/test", "tok-acme", "", ``)
	r.decode(t, &sent)
	if r.status != 202 || !strings.HasPrefix(sent.EventID, "evt_") {
		t.Fatalf("test event: %d %s", r.status, r.body)
	}
}
