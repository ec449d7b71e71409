package main

import (
	"context"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/hookstream/hookstream/subscription"
)

// The goal for fanout-scale: the per-event cost of fanout in a
// tenant of 100,000 endpoints is at most 1.5 times that in a tenant of 100,
// 10 of which match every event in both (matching never scans all
// endpoints).
const (
	scaleMatching = 10
	scaleTarget   = 1.5
)

// fanoutScaleResult is scenario fanout-scale: the fanout role alone, once
// per tenant size.
type fanoutScaleResult struct {
	Matching int              `json:"matching_endpoints"`
	Runs     []fanoutScaleRun `json:"runs"`
	// Ratio is the per-event cost in the largest tenant over that in the
	// smallest.
	Ratio float64 `json:"cost_ratio"`
}

type fanoutScaleRun struct {
	Endpoints int `json:"endpoints_in_tenant"`
	// CreateSeconds is how long creating the non-matching endpoints took.
	CreateSeconds float64       `json:"create_seconds"`
	MicrosEvent   float64       `json:"us_per_event"`
	Fanout        *fanoutResult `json:"fanout"`
}

// fanoutScale measures fanout's cost per event in one tenant of 100 and of
// 100,000 endpoints (10,000 with -quick), 10 of which match every event:
// each size gets a fresh cluster, the non-matching endpoints are created
// first, then fanoutRun creates the 10 matching ones, publishes a backlog
// for the tenant and times one fanout process working through it.
func (b *bench) fanoutScale(ctx context.Context) error {
	cfg := b.cfg
	sizes := []int{100, 100_000}
	if cfg.quick {
		sizes[1] = 10_000
	}
	res := &fanoutScaleResult{Matching: scaleMatching}
	for _, n := range sizes {
		cl, err := startCluster(ctx, b.bins, b.scenarioDir(fmt.Sprintf("fanout-scale-%d", n)), clusterConfig{partitions: cfg.partitions, api: cfg.endpointsVia == "api", pprof: cfg.pprof})
		if err != nil {
			return err
		}
		b.logf("fanout-scale: creating %d endpoints that do not match in tenant %s", n-scaleMatching, tenantName(0))
		start := time.Now()
		err = createOtherEndpoints(ctx, cl.brokers, cl.redisURL, tenantName(0), n-scaleMatching)
		created := time.Since(start)
		var f *fanoutResult
		if err == nil {
			f, err = b.fanoutRun(ctx, cl, scaleMatching, 1, cfg.fanoutEvents)
		}
		cl.stop()
		if err != nil {
			return fmt.Errorf("%d endpoints: %w", n, err)
		}
		// 1e6 µs over events/s; perSecond guards a zero rate.
		run := fanoutScaleRun{Endpoints: n, CreateSeconds: created.Seconds(), MicrosEvent: perSecond(1e6, f.EventsS), Fanout: f}
		res.Runs = append(res.Runs, run)
		b.logf("fanout-scale, %d endpoints (created in %v): %s events, %.1f µs/event", n, created.Round(time.Second), formatRate(f.EventsS), run.MicrosEvent)
	}
	if small := res.Runs[0].MicrosEvent; small > 0 {
		res.Ratio = res.Runs[len(res.Runs)-1].MicrosEvent / small
	}
	b.rep.FanoutScale = res
	return nil
}

// createOtherEndpoints creates n endpoints of tenant through
// subscription.Store, as the api role does, none of which selects
// eventType: spread over filters of other types, so they fill the tenant's
// index sets without ever matching.
func createOtherEndpoints(ctx context.Context, brokers, redisURL, tenant string, n int) error {
	other := [][]string{{"agent.created"}, {"agent.*"}, {"call.started", "call.ended"}, {"fleet.*"}, {"billing.payment_failed"}}
	store, closeStore, err := runStore(ctx, brokers, redisURL)
	if err != nil {
		return err
	}
	defer closeStore()
	var next atomic.Int64
	var first atomic.Pointer[error]
	var wg sync.WaitGroup
	// About 5,000 creates/s on 2 cores: each waits for Kafka's ack.
	for range 64 {
		wg.Go(func() {
			for first.Load() == nil && ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				_, err := store.Create(ctx, tenant, subscription.EndpointInput{URL: "http://127.0.0.1:1/never", Events: other[i%len(other)]})
				if err != nil {
					err = fmt.Errorf("endpoint %d: %w", i, err)
					first.CompareAndSwap(nil, &err)
				}
			}
		})
	}
	wg.Wait()
	if err := first.Load(); err != nil {
		return *err
	}
	return ctx.Err()
}

// target is the goal; false when the scenario did not run.
func (r *fanoutScaleResult) target() (target, bool) {
	if r == nil || len(r.Runs) < 2 || r.Ratio == 0 {
		return target{}, false
	}
	small, large := r.Runs[0], r.Runs[len(r.Runs)-1]
	return target{
		Name:     fmt.Sprintf("fanout cost/event, %d vs %d endpoints in the tenant (%d match)", large.Endpoints, small.Endpoints, r.Matching),
		Goal:     fmt.Sprintf("<= %.1f", scaleTarget),
		Measured: fmt.Sprintf("%.2f (%.1f vs %.1f µs)", r.Ratio, large.MicrosEvent, small.MicrosEvent),
		Met:      r.Ratio <= scaleTarget,
	}, true
}

// writeTable prints one line per tenant size.
func (r *fanoutScaleResult) writeTable(w io.Writer) {
	if r == nil || len(r.Runs) == 0 {
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "fanout scale\tmatching\tevents/s\tµs/event\tpeak RSS MiB")
	for _, run := range r.Runs {
		fmt.Fprintf(tw, "%d endpoints in the tenant\t%d\t%.0f\t%.1f\t%s\n", run.Endpoints, r.Matching, run.Fanout.EventsS, run.MicrosEvent, rssString(run.Fanout.PeakRSS))
	}
	_ = tw.Flush()
	if len(r.Runs) > 1 {
		fmt.Fprintf(w, "fanout scale: cost/event ratio %.2f (target <= %.1f)\n", r.Ratio, scaleTarget)
	}
	for _, run := range r.Runs {
		if run.Fanout.Note != "" {
			fmt.Fprintf(w, "note (fanout scale, %d endpoints): %s\n", run.Endpoints, run.Fanout.Note)
		}
	}
	fmt.Fprintln(w)
}
