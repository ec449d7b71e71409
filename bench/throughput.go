package main

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hookstream/hookstream/fanout"
	"github.com/hookstream/hookstream/topic"
)

// heapSampler records the largest live heap seen while it runs.
type heapSampler struct {
	stop chan struct{}
	done chan struct{}
	peak atomic.Uint64
}

func sampleHeap() *heapSampler {
	h := &heapSampler{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(h.done)
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapAlloc > h.peak.Load() {
				h.peak.Store(ms.HeapAlloc)
			}
			select {
			case <-h.stop:
				return
			case <-t.C:
			}
		}
	}()
	return h
}

func (h *heapSampler) finish() float64 {
	close(h.stop)
	<-h.done
	return float64(h.peak.Load()) / (1 << 20)
}

// publishAll publishes n events from conc goroutines and returns the
// elapsed time and the failures.
func publishAll(ctx context.Context, n int64, conc int, tenants int, publish func(ctx context.Context, seq int64) error) (time.Duration, int64, error) {
	var next, errs atomic.Int64
	var first atomic.Pointer[error]
	start := time.Now()
	var wg sync.WaitGroup
	for range conc {
		wg.Go(func() {
			for ctx.Err() == nil {
				seq := next.Add(1) - 1
				if seq >= n {
					return
				}
				if err := publish(ctx, seq); err != nil {
					errs.Add(1)
					first.CompareAndSwap(nil, &err)
				}
			}
		})
	}
	wg.Wait()
	var err error
	if e := first.Load(); e != nil {
		err = *e
	}
	return time.Since(start), errs.Load(), err
}

// publishLibrary measures publishing through the producer library, in this
// process, against the broker alone.
func (b *bench) publishLibrary(ctx context.Context) error {
	cfg := b.cfg
	cl, err := startCluster(ctx, b.bins, b.scenarioDir("publish-lib"), clusterConfig{partitions: cfg.partitions, pprof: cfg.pprof})
	if err != nil {
		return err
	}
	defer cl.stop()
	pub, err := newLibPublisher(ctx, cl.brokers)
	if err != nil {
		return err
	}
	defer pub.Close()
	tenants := cfg.endpoints / cfg.fanout
	// Warm the client up (metadata, connections) outside the measurement.
	for i := range 100 {
		if err := pub.Publish(ctx, tenantName(i%tenants), b.payload.data(nil, int64(i), time.Now().UnixNano())); err != nil {
			return fmt.Errorf("warm-up publish: %w", err)
		}
	}
	b.logf("publish-lib: %d events through the producer library from %d goroutines", cfg.publishEvents, cfg.publishWorkers)
	runtime.GC()
	resetPeakRSS()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	heap := sampleHeap()
	elapsed, errs, first := publishAll(ctx, cfg.publishEvents, cfg.publishWorkers, tenants, func(ctx context.Context, seq int64) error {
		return pub.Publish(ctx, tenantName(int(seq%int64(tenants))), b.payload.data(make([]byte, 0, b.payload.size), seq, time.Now().UnixNano()))
	})
	peakHeap := heap.finish()
	runtime.ReadMemStats(&after)
	n := float64(cfg.publishEvents)
	r := &publishResult{
		Path:        "producer library",
		Events:      cfg.publishEvents,
		Seconds:     elapsed.Seconds(),
		Rate:        perSecond(n, elapsed.Seconds()),
		AllocsEvent: float64(after.Mallocs-before.Mallocs) / n,
		BytesEvent:  float64(after.TotalAlloc-before.TotalAlloc) / n,
		AllocsWhere: "publisher process",
		PeakHeapMiB: peakHeap,
		PeakRSS:     cl.peakRSS(),
		Concurrency: cfg.publishWorkers,
		Errors:      errs,
	}
	r.Notes = append(r.Notes, fmt.Sprintf("allocs include the benchmark's one data buffer per event and the heap sampler; %d-byte envelopes", b.payload.size))
	if first != nil {
		r.Notes = append(r.Notes, "first error: "+first.Error())
	}
	b.rep.Publish = append(b.rep.Publish, r)
	b.logf("publish-lib: %s events, %.1f allocs/event", formatRate(r.Rate), r.AllocsEvent)
	return cl.alive()
}

// publishHTTP measures POST /v1/events, one event per request and batches
// of 100, each against a fresh api process.
func (b *bench) publishHTTP(ctx context.Context) error {
	cfg := b.cfg
	tenants := cfg.endpoints / cfg.fanout
	for _, batch := range []int{1, 100} {
		conc := cfg.publishWorkers
		if batch > 1 {
			conc = 8
		}
		name := fmt.Sprintf("HTTP, 1 event/request, %d connections", conc)
		if batch > 1 {
			name = fmt.Sprintf("HTTP, %d events/request, %d connections", batch, conc)
		}
		cl, err := startCluster(ctx, b.bins, b.scenarioDir(fmt.Sprintf("publish-http-%d", batch)), clusterConfig{partitions: cfg.partitions, api: true, instrumentAPI: true, pprof: cfg.pprof})
		if err != nil {
			return err
		}
		pub := newHTTPPublisher(cl.apiURL, conc)
		for i := range 10 {
			if err := pub.Publish(ctx, tenantName(i%tenants), b.payload.data(nil, int64(i), time.Now().UnixNano())); err != nil {
				pub.Close()
				cl.stop()
				return fmt.Errorf("warm-up publish: %w", err)
			}
		}
		requests := cfg.publishEvents / int64(batch)
		b.logf("publish-http: %d events, %d per request, %d connections", requests*int64(batch), batch, conc)
		before, memErr := readMemstats(ctx, cl.api)
		heap := remoteHeap(ctx, cl.api)
		elapsed, errs, first := publishAll(ctx, requests, conc, tenants, func(ctx context.Context, seq int64) error {
			tenant := tenantName(int(seq % int64(tenants)))
			if batch == 1 {
				return pub.Publish(ctx, tenant, b.payload.data(nil, seq, time.Now().UnixNano()))
			}
			datas := make([][]byte, batch)
			for i := range datas {
				datas[i] = b.payload.data(nil, seq*int64(batch)+int64(i), time.Now().UnixNano())
			}
			return pub.PublishBatch(ctx, tenant, datas)
		})
		pub.Close()
		peakHeap := heap()
		after, err := readMemstats(ctx, cl.api)
		memErr = errors.Join(memErr, err)
		events := requests * int64(batch)
		r := &publishResult{
			Path:        name,
			Events:      events,
			Seconds:     elapsed.Seconds(),
			Rate:        perSecond(float64(events), elapsed.Seconds()),
			PeakRSS:     cl.peakRSS(),
			Concurrency: conc,
			Errors:      errs * int64(batch),
		}
		if memErr == nil {
			r.AllocsEvent = float64(after.Mallocs-before.Mallocs) / float64(events)
			r.BytesEvent = float64(after.TotalAlloc-before.TotalAlloc) / float64(events)
			r.AllocsWhere = "api process"
			r.PeakHeapMiB = peakHeap
			r.Notes = append(r.Notes, "api process run from bench/pprofcmd (cmd/hookstream + expvar) to read its allocation counters; they include the expvar reads (10/s)")
		} else {
			r.Notes = append(r.Notes, "api allocation counters unreadable: "+memErr.Error())
		}
		if first != nil {
			r.Notes = append(r.Notes, "first error: "+first.Error())
		}
		alive := cl.alive()
		cl.stop()
		b.rep.Publish = append(b.rep.Publish, r)
		b.logf("publish-http: %s events", formatRate(r.Rate))
		if alive != nil {
			return alive
		}
	}
	return nil
}

// fanoutAlone measures the fanout role by itself: a backlog of events is
// published first, then one fanout process starts and works through it.
func (b *bench) fanoutAlone(ctx context.Context) error {
	cfg := b.cfg
	for _, f := range []int{1, 10, 100} {
		if f > cfg.endpoints {
			continue
		}
		// Bound the deliveries kept in the in-memory broker.
		events := min(cfg.fanoutEvents, int64(200_000/f))
		tenants := cfg.endpoints / f
		id := fmt.Sprintf("fanout-%d", f)
		cl, err := startCluster(ctx, b.bins, b.scenarioDir(id), clusterConfig{partitions: cfg.partitions, api: cfg.endpointsVia == "api", pprof: cfg.pprof})
		if err != nil {
			return err
		}
		r, err := b.fanoutRun(ctx, cl, f, tenants, events)
		cl.stop()
		if err != nil {
			return fmt.Errorf("fan-out %d: %w", f, err)
		}
		b.rep.Fanout = append(b.rep.Fanout, r)
		b.logf("fanout alone, fan-out %d: %s events, %s deliveries", f, formatRate(r.EventsS), formatRate(r.Deliveries))
	}
	return nil
}

func (b *bench) fanoutRun(ctx context.Context, cl *cluster, f, tenants int, events int64) (*fanoutResult, error) {
	resetPeakRSS()
	if _, err := b.createEndpoints(ctx, cl, tenants*f, f, tenants); err != nil {
		return nil, err
	}
	pub, err := newLibPublisher(ctx, cl.brokers)
	if err != nil {
		return nil, err
	}
	_, errs, pubErr := publishAll(ctx, events, b.cfg.publishWorkers, tenants, func(ctx context.Context, seq int64) error {
		return pub.Publish(ctx, tenantName(int(seq%int64(tenants))), b.payload.data(nil, seq, time.Now().UnixNano()))
	})
	pub.Close()
	if errs > 0 {
		return nil, fmt.Errorf("%d publishes failed, first: %w", errs, pubErr)
	}
	kc, err := kgo.NewClient(kgo.SeedBrokers(cl.brokers))
	if err != nil {
		return nil, err
	}
	defer kc.Close()
	adm := kadm.NewClient(kc)

	started := time.Now()
	if cl.fanout, err = cl.startRole(ctx, "fanout", "fanout", nil); err != nil {
		return nil, err
	}
	// The clock starts when the deliveries topic's end offsets (which grow
	// as fanout produces inside its transactions) pass 10% of the expected
	// deliveries, leaving out start-up and the group join, and stops when
	// the fanout group has committed every event, its last transaction
	// included. Transaction markers add one offset per partition per
	// transaction to the end offsets, a small undercount of the work left.
	deliveriesTopic := topic.New(topic.DefaultPrefix).Deliveries
	eventsTopic := topic.New(topic.DefaultPrefix).Events
	total := events * int64(f)
	var t0, t1 time.Time
	var atStart int64
	deadline := time.Now().Add(5 * time.Minute)
	for t1.IsZero() {
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("fanout did not fan %d events out in 5 minutes", events)
		}
		if err := cl.alive(); err != nil {
			return nil, err
		}
		if t0.IsZero() {
			ends, err := adm.ListEndOffsets(ctx, deliveriesTopic)
			if err == nil {
				var n int64
				ends.Each(func(o kadm.ListedOffset) { n += o.Offset })
				if n >= total/10 {
					t0, atStart = time.Now(), min(n, total)
				}
			}
		} else {
			offs, err := adm.FetchOffsets(ctx, fanout.Group)
			if err == nil {
				var done int64
				offs.Each(func(o kadm.OffsetResponse) {
					if o.Topic == eventsTopic && o.At > 0 {
						done += o.At
					}
				})
				if done >= events {
					t1 = time.Now()
				}
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	var note string
	if atStart >= total {
		// Everything was produced before the first look: fall back to
		// timing from the process start, start-up and group join included.
		t0, atStart = started, 0
		note = "too few events to leave out start-up: timed from the process start (raise -events)"
	}
	sec := t1.Sub(t0).Seconds()
	measured := float64(total-atStart) / float64(f)
	return &fanoutResult{
		Fanout:     f,
		Events:     events,
		Seconds:    sec,
		Measured:   int64(measured),
		EventsS:    perSecond(measured, sec),
		Deliveries: perSecond(measured*float64(f), sec),
		PeakRSS:    cl.peakRSS(),
		Note:       note,
	}, nil
}
