package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"time"

	"github.com/segmentio/encoding/json"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hookstream/hookstream/fanout"
	"github.com/hookstream/hookstream/internal/record"
	"github.com/hookstream/hookstream/topic"
)

// replayTenant owns the replayed events and the one endpoint they go to.
const replayTenant = "bench-replay"

// replayBeside is scenario (f): (b)'s load while a replay job sends a
// backlog of events (100,000; 10,000 with -quick) to one more endpoint,
// at the job's default rate. The other endpoints' latency against (b)'s,
// and the replay's events/s.
func (b *bench) replayBeside(ctx context.Context) error {
	rate, how, err := b.pacedRate()
	if err != nil {
		return err
	}
	n := 100000
	if b.cfg.quick {
		n = 10000
	}
	s, err := b.delivery(ctx, deliverySpec{
		id:         "f",
		name:       fmt.Sprintf("(f) beside a %d-event replay", n),
		desc:       fmt.Sprintf("as (b) (%s), while a replay job (POST /v1/endpoints/{id}/replay, default rate) sends %d events of one more tenant, published before the load, to one more endpoint; the other endpoints only", how, n),
		deliverers: 1,
		rate:       rate,
		beside: func(ctx context.Context, cl *cluster) (func(*scenarioResult), error) {
			return b.startReplay(ctx, cl, n)
		},
	})
	return b.add(s, err, "b")
}

// startReplay publishes n events of replayTenant straight to the events
// topic, waits until fanout has passed them (they match no endpoint yet),
// creates the replay endpoint and starts the replay job. done adds the
// replay's figures to the scenario.
func (b *bench) startReplay(ctx context.Context, cl *cluster, n int) (done func(*scenarioResult), err error) {
	var received atomic.Int64
	var first, last atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		now := time.Now().UnixNano()
		first.CompareAndSwap(0, now)
		last.Store(now)
		received.Add(1)
		w.WriteHeader(http.StatusNoContent)
	}))
	kc, err := kgo.NewClient(kgo.SeedBrokers(cl.brokers), kgo.ProducerBatchMaxBytes(1<<20))
	if err != nil {
		srv.Close()
		return nil, fmt.Errorf("kafka client: %w", err)
	}
	defer kc.Close()
	since := time.Now().Add(-time.Second)
	b.logf("(f): publishing %d events to replay", n)
	data := `{"agent_id":"agt_1","name":"Bot","model":"gpt-4o","created_by":42}`
	var recs []*kgo.Record
	for i := range n {
		body := fmt.Sprintf(`{"id":"evt_%024x","event":"agent.created","timestamp":"2026-03-04T12:00:00+00:00","data":%s}`, i+1, data)
		recs = append(recs, &kgo.Record{Topic: topic.New(topic.DefaultPrefix).Events, Key: []byte(replayTenant), Value: []byte(body),
			Headers: []kgo.RecordHeader{{Key: record.HeaderTenant, Value: []byte(replayTenant)}}})
		if len(recs) == 5000 || i == n-1 {
			if err := kc.ProduceSync(ctx, recs...).FirstErr(); err != nil {
				srv.Close()
				return nil, fmt.Errorf("publish the replay's events: %w", err)
			}
			recs = recs[:0]
		}
	}
	until := time.Now().Add(time.Second)
	if err := waitFanout(ctx, kc); err != nil {
		srv.Close()
		return nil, err
	}
	client := &http.Client{Timeout: 30 * time.Second}
	var ep struct{ ID string }
	if err := callAPI(ctx, client, http.MethodPost, cl.apiURL+"/v1/endpoints", map[string]any{
		"tenant": replayTenant, "url": srv.URL + "/replay", "events": []string{"agent.*"},
	}, &ep); err != nil {
		srv.Close()
		return nil, err
	}
	var job struct{ Job struct{ ID string } }
	started := time.Now()
	if err := callAPI(ctx, client, http.MethodPost, cl.apiURL+"/v1/endpoints/"+ep.ID+"/replay", map[string]any{
		"tenant": replayTenant, "since": since.UTC().Format(time.RFC3339), "until": until.UTC().Format(time.RFC3339),
	}, &job); err != nil {
		srv.Close()
		return nil, err
	}
	b.logf("(f): replay job %s started", job.Job.ID)
	return func(s *scenarioResult) {
		defer srv.Close()
		var j struct {
			State      string
			Sent, Rate int64
		}
		_ = callAPI(ctx, client, http.MethodGet, cl.apiURL+"/v1/jobs/"+job.Job.ID+"?tenant="+replayTenant, nil, &j)
		got := received.Load()
		secs := time.Duration(last.Load() - first.Load()).Seconds()
		perSec := 0.0
		if secs > 0 {
			perSec = float64(got) / secs
		}
		s.Notes = append(s.Notes, fmt.Sprintf("replay of %d events (job rate %d/s): %d delivered in %.1fs (%.0f events/s), job %s with %d sent after %.1fs",
			n, j.Rate, got, secs, perSec, j.State, j.Sent, time.Since(started).Seconds()))
	}, nil
}

// waitFanout waits until the fanout group has committed every event.
func waitFanout(ctx context.Context, kc *kgo.Client) error {
	adm := kadm.NewClient(kc)
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	for {
		lags, err := adm.Lag(ctx, fanout.Group)
		if err == nil {
			total := int64(0)
			lags.Each(func(l kadm.DescribedGroupLag) { total += l.Lag.Total() })
			if total == 0 {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("fanout did not catch up with the replay's events: %w", ctx.Err())
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// callAPI sends one request with the admin token and decodes the answer.
func callAPI(ctx context.Context, client *http.Client, method, url string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		return errors.New(method + " " + url + ": " + resp.Status + ": " + string(b))
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}
