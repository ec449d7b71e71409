package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// deliverySpec is one end-to-end delivery scenario.
type deliverySpec struct {
	id, name, desc string
	unhealthy      behaviour // what 10% of the endpoints do; healthy: none
	deliverers     int
	delivererArgs  []string
	noDefaultArgs  bool    // the deliverer's own defaults, not delivererArgs()'s
	rate           float64 // events/s, open loop; 0: closed loop at the pipeline's own pace
	// hung > 0 adds one more tenant with hung endpoints, every one
	// black-holed, that gets its share of the events (needs rate > 0: its
	// events never complete a closed loop's window).
	hung int
	// Overrides of the configuration for (g) and (h); zero: cfg's.
	endpoints int
	maxEvents int64
	duration  time.Duration
	window    int
	// slow > 0: every healthy endpoint answers after slow, as real
	// receivers on the internet do.
	slow time.Duration
	// beside, when set, starts more work beside the load once the
	// endpoints exist (needs api); its result adds to the scenario's
	// (replay.go).
	beside func(ctx context.Context, cl *cluster) (done func(*scenarioResult), err error)
	// noIndexer leaves the delivery-log indexer out, to measure its cost.
	noIndexer bool
}

// hungRequestTimeout is the deliverer's request timeout in (c2): long, as
// in the probe, so the hung tenant's requests hold their slots.
const hungRequestTimeout = 60 * time.Second

// delivererArgs are the flags every deliverer process gets.
func (b *bench) delivererArgs() []string {
	return []string{"--max-in-flight", strconv.Itoa(b.cfg.inflight)}
}

// drainTimeout bounds the wait for the last deliveries after publishing stops.
func (b *bench) drainTimeout() time.Duration {
	if b.cfg.quick {
		return 20 * time.Second
	}
	return 60 * time.Second
}

// delivery runs one scenario: fresh processes, endpoints created through the
// API, events published through the producer library, deliveries received
// by the receivers.
func (b *bench) delivery(ctx context.Context, spec deliverySpec) (*scenarioResult, error) {
	cfg := b.cfg
	if spec.hung > 0 && spec.rate == 0 {
		return nil, errors.New("hung endpoints need an open-loop rate")
	}
	if spec.endpoints > 0 {
		cfg.endpoints = spec.endpoints
	}
	if spec.maxEvents > 0 {
		cfg.maxEvents = int(spec.maxEvents)
	}
	if spec.duration > 0 {
		cfg.duration = spec.duration
	}
	if spec.window > 0 {
		cfg.window = spec.window
	}
	tenants := cfg.endpoints / cfg.fanout
	modes := make([]behaviour, cfg.endpoints)
	if spec.slow > 0 {
		for ep := range modes {
			modes[ep] = slow
		}
	}
	unhealthy := 0
	if spec.unhealthy != healthy {
		// Every tenant, and so every events partition, has one bad endpoint
		// beside its healthy ones: the hardest case for isolation.
		for ep := range modes {
			if ep%10 == 0 {
				modes[ep] = spec.unhealthy
				unhealthy++
			}
		}
	}
	if spec.hung > 0 {
		// The last tenant: its endpoints come after the others'.
		tenants++
		for range spec.hung {
			modes = append(modes, blackhole)
		}
	}
	args := append(b.delivererArgs(), spec.delivererArgs...)
	if spec.noDefaultArgs {
		args = spec.delivererArgs
	}
	b.logf("%s: starting kafka, redis, fanout and %d deliverer(s)", spec.name, spec.deliverers)
	cl, err := startCluster(ctx, b.bins, b.scenarioDir(spec.id), clusterConfig{
		partitions:    cfg.partitions,
		api:           cfg.endpointsVia == "api" || spec.beside != nil,
		fanout:        true,
		deliverers:    spec.deliverers,
		delivererArgs: args,
		indexer:       !spec.noIndexer,
		pprof:         cfg.pprof,
	})
	if err != nil {
		return nil, err
	}
	defer cl.stop()

	b.logf("%s: creating %d endpoints (via %s)", spec.name, len(modes), cfg.endpointsVia)
	start := time.Now()
	eps, err := b.createEndpoints(ctx, cl, len(modes), cfg.fanout, tenants)
	if err != nil {
		return nil, errors.Join(err, cl.alive())
	}
	created := time.Since(start)

	pub, err := newLibPublisher(ctx, cl.brokers)
	if err != nil {
		return nil, err
	}
	defer pub.Close()
	besideDone := func(*scenarioResult) {}
	if spec.beside != nil {
		if besideDone, err = spec.beside(ctx, cl); err != nil {
			return nil, errors.Join(err, cl.alive())
		}
	}

	var loop *closedLoop
	var complete func(int64)
	if spec.rate == 0 {
		loop = newClosedLoop(cfg.window)
		complete = loop.release
	}
	rec := newRecorder(modes, cfg.fanout, tenants, cfg.maxEvents, complete)
	rec.secrets, rec.verifyEvery, rec.delay = eps.secrets, cfg.verifyEvery, spec.slow
	if !spec.noIndexer && spec.id == "a" {
		if rec.indexLag, err = startIndexLag(ctx, cl.redisURL); err != nil {
			return nil, err
		}
	}
	b.rs.record(rec)
	defer b.rs.record(nil)

	// Profiles, when asked for, cover the measured part of the load.
	profiles := make(chan func() []string, 1)
	if cfg.pprof {
		warm := time.Duration(cfg.warmup * float64(cfg.duration))
		pd := max(time.Second, min(10*time.Second, cfg.duration-warm-time.Second))
		timer := time.AfterFunc(warm, func() { profiles <- b.profile(ctx, cl, spec.id, pd) })
		defer timer.Stop()
	}
	cpu0, wall0, conns0 := cl.cpu(), time.Now(), b.rs.conns.Load()
	inflight := sampleInflight(b.rs)
	var res loadResult
	if loop != nil {
		b.logf("%s: publishing for %v, at most %d undelivered events in flight", spec.name, cfg.duration, cfg.window)
		res = loop.run(ctx, pub, b.payload, tenants, cfg.publishWorkers, int64(cfg.maxEvents), cfg.duration)
	} else {
		b.logf("%s: publishing %.0f events/s (%.0f deliveries/s) for %v", spec.name, spec.rate, spec.rate*float64(cfg.fanout), cfg.duration)
		res = paced(ctx, pub, b.payload, tenants, cfg.publishWorkers, spec.rate, int64(cfg.maxEvents), cfg.duration)
	}
	cores := coresUsed(cpu0, cl.cpu(), time.Since(wall0))
	inflightMean, inflightPeak := inflight.finish()
	skip := map[int64]bool{}
	for _, s := range res.failed {
		skip[s] = true
	}
	b.logf("%s: published %d events (%d failed); waiting for the last deliveries", spec.name, res.published, len(res.failed))
	dctx, cancel := context.WithTimeout(ctx, b.drainTimeout())
	drainErr := rec.waitComplete(dctx, res.published, skip)
	cancel()

	var indexLag *latencyStats
	var indexLagMissing int
	var indexBytes float64 // Redis used_memory per delivery received
	if rec.indexLag != nil {
		st, unresolved := rec.indexLag.finish()
		indexLag, indexLagMissing = &st, unresolved
		if used, err := redisUsedMemory(ctx, cl.redisURL); err == nil && rec.received.Load() > 0 {
			indexBytes = float64(used) / float64(rec.received.Load())
		}
	}
	rss := cl.peakRSS()
	alive := cl.alive()
	cl.saveMetrics(ctx)
	select {
	case wait := <-profiles:
		for _, path := range wait() {
			b.logf("%s: CPU profile %s", spec.name, path)
		}
	default:
	}
	samples := rec.snapshot()
	warm := time.Duration(cfg.warmup * float64(res.end.Sub(res.start)))
	w := window{res.start.Add(warm).UnixNano(), res.end.UnixNano()}
	n, lat := summarise(samples, w, nil)
	_, missing := rec.incomplete(res.published, skip)
	s := &scenarioResult{
		ID:              spec.id,
		Name:            spec.name,
		Description:     spec.desc,
		Rate:            perSecond(float64(n), w.seconds()),
		Deliveries:      int64(n),
		Seconds:         w.seconds(),
		Latency:         lat,
		PeakRSS:         rss,
		CPUCores:        cores,
		Published:       res.published,
		PublishRate:     perSecond(float64(res.published), res.end.Sub(res.start).Seconds()),
		Received:        rec.received.Load(),
		Incomplete:      missing,
		IndexLag:        indexLag,
		IndexLagMissing: indexLagMissing,
		Duplicates:      rec.duplicates.Load(),
		Misrouted:       rec.misrouted.Load(),
		Verified:        rec.verified.Load(),
		BadSignature:    rec.badSignature.Load(),
		Unhealthy:       rec.blackholed.Load() + rec.failed.Load(),
		Errors:          int64(len(res.failed)) + rec.bad.Load() + rec.overflow.Load(),
		BodyBytes:       rec.bodyBytes.Load(),
		Connections:     b.rs.conns.Load() - conns0,
		InFlight:        inflightMean,
		InFlightPeak:    inflightPeak,
	}
	besideDone(s)
	s.Notes = append(s.Notes, fmt.Sprintf("%d endpoints created (via %s) in %.1fs; %d events published in %.1fs (%.0f events/s); measured from %.1fs on",
		len(modes), cfg.endpointsVia, created.Seconds(), res.published, res.end.Sub(res.start).Seconds(), s.PublishRate, warm.Seconds()))
	if unhealthy > 0 {
		s.Notes = append(s.Notes, fmt.Sprintf("%d of %d endpoints %s; they got %d requests", unhealthy, cfg.endpoints, spec.unhealthy, s.Unhealthy))
	}
	if spec.hung > 0 {
		s.Notes = append(s.Notes, fmt.Sprintf("tenant %s: %d of its %d black-holed endpoints got a request (%d requests); a tenant over its --tenant-share takes slots only while half of --max-in-flight stays free (at most %d of %d here), so the rest wait for a slot",
			tenantName(tenants-1), rec.blackholedEndpoints.Load(), spec.hung, rec.blackholed.Load(), cfg.inflight-cfg.inflight/2, cfg.inflight))
	}
	if res.firstErr != nil {
		s.Notes = append(s.Notes, fmt.Sprintf("%d publishes failed, first: %v", len(res.failed), res.firstErr))
	}
	if s.BadSignature > 0 {
		s.Notes = append(s.Notes, fmt.Sprintf("%d of %d sampled signatures did NOT verify", s.BadSignature, s.BadSignature+s.Verified))
	}
	if s.Duplicates > 0 || s.Misrouted > 0 {
		s.Notes = append(s.Notes, fmt.Sprintf("%d duplicate and %d misrouted deliveries", s.Duplicates, s.Misrouted))
	}
	if indexLag != nil {
		s.Notes = append(s.Notes, fmt.Sprintf("index lag (receipt to queryable in the delivery-log index, %d sampled attempts): p50 %.0f ms, p99 %.0f ms; %d not queryable 10 s after the load",
			indexLag.Count, indexLag.P50, indexLag.P99, indexLagMissing))
		s.Notes = append(s.Notes, fmt.Sprintf("Redis memory after the load: %.0f bytes per delivery (the delivery-log index of every event, delivery and attempt, and the endpoint cache)", indexBytes))
	}
	if drainErr != nil {
		s.Notes = append(s.Notes, fmt.Sprintf("%d deliveries still missing %v after publishing stopped", missing, b.drainTimeout()))
	}
	if alive != nil {
		return s, alive
	}
	if n == 0 {
		return s, errNoSamples
	}
	return s, nil
}

// createEndpoints creates n endpoints, endpoint i for tenant
// endpointTenant(i, fanout, tenants) with URL b.rs.url(i), subscribed to
// every type with strict ordering.
func (b *bench) createEndpoints(ctx context.Context, cl *cluster, n, fanout, tenants int) (endpointsCreated, error) {
	if cl.api != nil {
		return createEndpoints(ctx, cl.apiURL, b.rs, n, fanout, tenants)
	}
	return createEndpointsStore(ctx, cl.brokers, cl.redisURL, b.rs, n, fanout, tenants)
}

// throughput is scenario (a).
func (b *bench) throughput(ctx context.Context) error {
	s, err := b.delivery(ctx, deliverySpec{
		id:   "a",
		name: "(a) throughput",
		desc: fmt.Sprintf("fan-out %d, %d-byte bodies, %d endpoints (%d tenants), 1 deliverer (--max-in-flight %d), closed loop of %d undelivered events",
			b.cfg.fanout, b.cfg.bodySize, b.cfg.endpoints, b.cfg.endpoints/b.cfg.fanout, b.cfg.inflight, b.cfg.window),
		deliverers: 1,
	})
	return b.add(s, err, "")
}

// throughputNoIndex is scenario a-noindex: (a) without the delivery-log
// indexer, so the report shows what the indexer costs (a).
func (b *bench) throughputNoIndex(ctx context.Context) error {
	s, err := b.delivery(ctx, deliverySpec{
		id:         "a-noindex",
		name:       "(a) without indexer",
		desc:       "(a)'s configuration without the delivery-log indexer",
		deliverers: 1,
		noIndexer:  true,
	})
	if err == nil {
		setIndexerLoss(b.rep.scenario("a"), s)
	}
	return b.add(s, err, "")
}

// setIndexerLoss records on noIndex how much slower (a) ran with the
// indexer than without it, when both ran.
func setIndexerLoss(a, noIndex *scenarioResult) {
	if a == nil || noIndex == nil || noIndex.Rate == 0 {
		return
	}
	noIndex.Ratio, noIndex.RatioOf = a.Rate/noIndex.Rate, "(a) with indexer / this"
	noIndex.IndexerLossPct = (1 - a.Rate/noIndex.Rate) * 100
}

// pacedRate is the events/s of (b) and (c2), and how it was chosen:
// -latency-rate, or half of (a)'s deliveries/s over the fan-out.
func (b *bench) pacedRate() (float64, string, error) {
	if rate := b.cfg.latencyRate; rate > 0 {
		return rate, fmt.Sprintf("%.0f/s (-latency-rate)", rate), nil
	}
	a := b.rep.scenario("a")
	if a == nil || a.Rate == 0 {
		return 0, "", fmt.Errorf("needs (a)'s rate: run scenario a too, or set -latency-rate: %w", errSkipped)
	}
	rate := a.Rate / 2 / float64(b.cfg.fanout)
	return rate, fmt.Sprintf("%.0f/s (50%% of (a)'s deliveries/s / fan-out %d)", rate, b.cfg.fanout), nil
}

// latency is scenario (b): a paced publisher at half of (a)'s rate.
func (b *bench) latency(ctx context.Context) error {
	rate, how, err := b.pacedRate()
	if err != nil {
		return err
	}
	name := "(b) latency"
	if b.cfg.latencyRate == 0 {
		name += " at 50%"
	}
	s, err := b.delivery(ctx, deliverySpec{
		id:         "b",
		name:       name,
		desc:       "events published open loop at " + how + "; latency = receive time - publish call time",
		deliverers: 1,
		rate:       rate,
	})
	return b.add(s, err, "a")
}

// fairness is scenario (c2): (b) beside one more tenant that owns more
// black-holed endpoints than the deliverer has request slots.
func (b *bench) fairness(ctx context.Context) error {
	rate, how, err := b.pacedRate()
	if err != nil {
		return err
	}
	tenants := b.cfg.endpoints / b.cfg.fanout
	hung := max(300, b.cfg.inflight+50)
	s, err := b.delivery(ctx, deliverySpec{
		id:   "c2",
		name: fmt.Sprintf("(c2) beside %d hung endpoints", hung),
		desc: fmt.Sprintf("as (b), the %d tenants getting %s, plus one more tenant getting every %d-th event whose %d endpoints (more than --max-in-flight %d) all accept and never answer; deliverer --request-timeout %v; the other tenants only",
			tenants, how, tenants+1, hung, b.cfg.inflight, hungRequestTimeout),
		deliverers: 1,
		// --drain-timeout: stopping the deliverer need not wait for the hung requests.
		delivererArgs: []string{"--request-timeout", hungRequestTimeout.String(), "--drain-timeout", "1s"},
		// The other tenants get (b)'s rate; the hung one its share on top.
		rate: rate * float64(tenants+1) / float64(tenants),
		hung: hung,
	})
	return b.add(s, err, "b")
}

// isolation is scenario (c): 10% of endpoints black-holed or failing.
func (b *bench) isolation(ctx context.Context, bad behaviour) error {
	spec := deliverySpec{deliverers: 1}
	switch bad {
	case blackhole:
		spec.id, spec.name = "c-blackhole", "(c) 10% black-holed"
		spec.desc = fmt.Sprintf("as (a), but 10%% of endpoints accept and never answer; deliverer --request-timeout %v; healthy endpoints only", b.cfg.requestTimeout)
		spec.delivererArgs = []string{"--request-timeout", b.cfg.requestTimeout.String()}
	default:
		spec.id, spec.name = "c-500", "(c) 10% answer 500"
		spec.desc = "as (a), but 10% of endpoints answer 500 at once (default retry schedule); healthy endpoints only"
	}
	spec.unhealthy = bad
	s, err := b.delivery(ctx, spec)
	return b.add(s, err, "a")
}

// scale is scenario (d): (a) with two deliverer processes.
func (b *bench) scale(ctx context.Context) error {
	s, err := b.delivery(ctx, deliverySpec{
		id:         "d",
		name:       "(d) 2 deliverers",
		desc:       fmt.Sprintf("as (a) with 2 deliverer processes sharing %d deliveries partitions", b.cfg.partitions),
		deliverers: 2,
	})
	return b.add(s, err, "a")
}

// add records s (even when err is set, it may hold what was measured) with
// its ratio to the scenario ratioOf.
func (b *bench) add(s *scenarioResult, err error, ratioOf string) error {
	if s != nil {
		if r := b.rep.scenario(ratioOf); r != nil && r.Rate > 0 {
			s.Ratio, s.RatioOf = s.Rate/r.Rate, "("+ratioOf+")"
		}
		b.rep.Scenarios = append(b.rep.Scenarios, s)
		b.logf("%s: %s deliveries, p99 %.1f ms", s.Name, formatRate(s.Rate), s.Latency.P99)
	}
	return err
}
