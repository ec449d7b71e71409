package main

import (
	"context"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/hookstream/hookstream/deliverer"
)

// Scenarios (g) and (h): a deployment's size rather than its speed.
const (
	// endpoints of (g) and (h), and -quick's
	bigEndpoints, bigEndpointsQuick = 10_000, 1_000
	// deliveries to (g)'s black-holed endpoints, one per event
	backlogDeliveries, backlogDeliveriesQuick = 100_000, 10_000
	// how long (h)'s receivers take to answer
	slowAnswer = 200 * time.Millisecond
	// the deliverer's memory goal in every scenario
	rssGoalMiB = 256
)

func (b *bench) bigEndpoints() int {
	if b.cfg.quick {
		return bigEndpointsQuick
	}
	return bigEndpoints
}

// memoryBound is scenario (g): 10,000 endpoints, every tenth black-holed,
// until 100,000 deliveries to those wait in backoff or parked; what counts
// is the deliverer's peak RSS.
func (b *bench) memoryBound(ctx context.Context) error {
	backlog := int64(backlogDeliveries)
	if b.cfg.quick {
		backlog = backlogDeliveriesQuick
	}
	eps := b.bigEndpoints()
	s, err := b.delivery(ctx, deliverySpec{
		id:   "g",
		name: "(g) 100k backing off",
		desc: fmt.Sprintf("%d endpoints (%d tenants), every tenth accepting and never answering (deliverer --request-timeout %v); closed loop of %d undelivered events until %d events were published, so %d deliveries back off; healthy endpoints only",
			eps, eps/b.cfg.fanout, b.cfg.requestTimeout, b.cfg.window, backlog, backlog),
		deliverers:    1,
		unhealthy:     blackhole,
		delivererArgs: []string{"--request-timeout", b.cfg.requestTimeout.String()},
		endpoints:     eps,
		maxEvents:     backlog,
		// Ends when the backlog is published; the duration only caps it.
		duration: 10 * time.Minute,
	})
	if s != nil {
		s.Notes = append(s.Notes, fmt.Sprintf("%d deliveries to black-holed endpoints published (one per event); the deliverer's peak RSS against the %d MiB goal", s.Published, rssGoalMiB))
	}
	return b.add(s, err, "")
}

// slowReceivers is scenario (h): 10,000 endpoints whose receivers answer
// after 200 ms, so throughput is bound by requests in flight: first at the
// deliverer's defaults, then at -slow-inflight, then the bare loop at that
// concurrency.
func (b *bench) slowReceivers(ctx context.Context) error {
	eps := b.bigEndpoints()
	run := func(id, name string, inflight int, args []string) (*scenarioResult, error) {
		// Enough undelivered events to keep inflight requests busy twice over.
		window := max(b.cfg.window, 2*inflight/b.cfg.fanout)
		return b.delivery(ctx, deliverySpec{
			id:   id,
			name: name,
			desc: fmt.Sprintf("%d endpoints (%d tenants) whose receivers answer after %v; closed loop of %d undelivered events; deliverer flags %v",
				eps, eps/b.cfg.fanout, slowAnswer, window, args),
			deliverers:    1,
			delivererArgs: args,
			noDefaultArgs: true,
			endpoints:     eps,
			window:        window,
			slow:          slowAnswer,
		})
	}
	// The process runs with its own default; the window is sized for it.
	s, err := run("h-default", "(h) 200 ms, defaults", deliverer.DefaultMaxInFlight, nil)
	if err := b.add(s, err, ""); err != nil {
		return err
	}
	n := b.cfg.slowInflight
	best, err := run("h", "(h) 200 ms, "+strconv.Itoa(n)+" in flight", n, []string{"--max-in-flight", strconv.Itoa(n)})
	if err := b.add(best, err, ""); err != nil {
		return err
	}
	for _, x := range []*scenarioResult{s, best} {
		x.Notes = append(x.Notes, fmt.Sprintf("receivers served %.0f requests at a time on average (peak %d)", x.InFlight, x.InFlightPeak))
	}
	count := int64(best.Rate * 10)
	if b.cfg.quick {
		count = int64(best.Rate * 3)
	}
	bare, err := b.bareLoop(ctx, "h-bare", "(h) bare loop, "+strconv.Itoa(n)+" in flight", n, eps, slowAnswer, max(count, int64(n)*10))
	if err != nil {
		return err
	}
	if bare.Rate > 0 {
		best.Ratio, best.RatioOf = best.Rate/bare.Rate, "(h-bare)"
	}
	bare.Notes = append(bare.Notes, fmt.Sprintf("receivers served %.0f requests at a time on average (peak %d)", bare.InFlight, bare.InFlightPeak))
	b.rep.Scenarios = append(b.rep.Scenarios, bare)
	return nil
}

// inflightSampler samples the requests the receivers are serving.
type inflightSampler struct {
	stop       chan struct{}
	done       chan struct{}
	sum, count int64
	peak       atomic.Int64
}

func sampleInflight(rs *receivers) *inflightSampler {
	s := &inflightSampler{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-s.stop:
				return
			case <-t.C:
			}
			n := rs.active.Load()
			s.sum += n
			s.count++
			if n > s.peak.Load() {
				s.peak.Store(n)
			}
		}
	}()
	return s
}

// finish stops sampling and returns the mean and the peak.
func (s *inflightSampler) finish() (float64, int64) {
	close(s.stop)
	<-s.done
	if s.count == 0 {
		return 0, 0
	}
	return float64(s.sum) / float64(s.count), s.peak.Load()
}

// judgeScale adds the targets of (b)'s CPU, (g) and (h).
func (r *report) judgeScale() {
	a, b := r.scenario("a"), r.scenario("b")
	if a != nil && b != nil && a.Rate > 0 && b.Rate > 0 {
		if b.Latency.Count > 0 {
			r.Targets = append(r.Targets, target{b.Name + ": p50", "<= 10 ms", fmt.Sprintf("%.1f ms", b.Latency.P50), b.Latency.P50 <= 10})
		}
		ca, cb := cpuPerDelivery(a), cpuPerDelivery(b)
		if ca > 0 {
			x := cb / ca
			r.Targets = append(r.Targets, target{"(b) CPU per delivery vs (a)", "<= 1.5x", fmt.Sprintf("%.2fx (%.0f vs %.0f µs)", x, cb, ca), x <= 1.5})
		}
	}
	for _, s := range r.Scenarios {
		if s.ID != "g" && s.ID != "h-default" && s.ID != "h" {
			continue
		}
		peak := 0.0
		for name, v := range s.PeakRSS {
			if len(name) >= 9 && name[:9] == "deliverer" {
				peak = max(peak, v)
			}
		}
		if peak > 0 {
			r.Targets = append(r.Targets, target{"(" + s.ID + ") deliverer peak RSS", fmt.Sprintf("<= %d MiB", rssGoalMiB), fmt.Sprintf("%.0f MiB", peak), peak <= rssGoalMiB})
		}
	}
	for _, id := range []string{"h-default", "h"} {
		if h := r.scenario(id); h != nil {
			r.Targets = append(r.Targets, target{"(" + id + ") deliveries/s to 200 ms receivers", ">= 5000", fmt.Sprintf("%.0f (%.0f in flight)", h.Rate, h.InFlight), h.Rate >= 5000})
		}
	}
}

// cpuPerDelivery is the CPU µs per delivery of the benchmark's processes,
// the benchmark's own included.
func cpuPerDelivery(s *scenarioResult) float64 {
	total := 0.0
	for name, c := range s.CPUCores {
		if name != otherKey && name != systemKey {
			total += c
		}
	}
	return perSecond(total*1e6, s.Rate)
}

// bareLoop runs the bare keep-alive POST loop: count POSTs from conc
// goroutines to endpoints endpoints whose receivers answer after delay
// (0: at once).
func (b *bench) bareLoop(ctx context.Context, id, name string, conc, endpoints int, delay time.Duration, count int64) (*scenarioResult, error) {
	b.logf("%s: %d POSTs of %d bytes from %d keep-alive goroutines to %d endpoints", name, count, b.cfg.bodySize, conc, endpoints)
	modes := make([]behaviour, endpoints)
	if delay > 0 {
		for ep := range modes {
			modes[ep] = slow
		}
	}
	tenants := endpoints / b.cfg.fanout
	events := int((count + int64(b.cfg.fanout) - 1) / int64(b.cfg.fanout))
	rec := newRecorder(modes, b.cfg.fanout, tenants, events, nil)
	rec.delay = delay
	b.rs.record(rec)
	defer b.rs.record(nil)
	conns0 := b.rs.conns.Load()
	inflight := sampleInflight(b.rs)
	start, cpu0 := time.Now(), map[string]float64{"bench": cpuSeconds("/proc/self/stat"), systemKey: systemBusySeconds()}
	res, err := runBaseline(ctx, b.rs, b.payload, count, conc, b.cfg.fanout, tenants)
	elapsed := time.Since(start)
	cores := coresUsed(cpu0, map[string]float64{"bench": cpuSeconds("/proc/self/stat"), systemKey: systemBusySeconds()}, elapsed)
	inflightMean, inflightPeak := inflight.finish()
	if err != nil {
		return nil, err
	}
	samples := rec.snapshot()
	if len(samples) == 0 {
		return nil, errNoSamples
	}
	// The middle 80% of the receive timeline: the loop's steady state.
	w := middle(samples, 0.1)
	n, _ := summarise(samples, w, nil)
	desc := fmt.Sprintf("%d keep-alive goroutines POST the same %d-byte bodies to the same receivers, no Kafka/Redis/signing; rate over the middle 80%% of receives",
		conc, b.cfg.bodySize)
	if delay > 0 {
		desc += fmt.Sprintf("; receivers answer after %v", delay)
	}
	s := &scenarioResult{
		ID:           id,
		Name:         name,
		Description:  desc,
		Rate:         perSecond(float64(n), w.seconds()),
		Deliveries:   int64(n),
		Seconds:      w.seconds(),
		PeakRSS:      map[string]float64{"bench": vmHWM("/proc/self/status")},
		CPUCores:     cores,
		Received:     rec.received.Load(),
		Duplicates:   rec.duplicates.Load(),
		Errors:       res.Errors + rec.bad.Load(),
		BodyBytes:    rec.bodyBytes.Load(),
		Connections:  b.rs.conns.Load() - conns0,
		InFlight:     inflightMean,
		InFlightPeak: inflightPeak,
	}
	s.Notes = append(s.Notes, fmt.Sprintf("%d POSTs in %.1fs overall (%.0f/s including ramp-up and tail)", res.Sent, elapsed.Seconds(), perSecond(float64(res.Sent), elapsed.Seconds())))
	return s, nil
}
