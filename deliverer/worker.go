package deliverer

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hookstream/hookstream/internal/record"
)

type mode uint8

const (
	running  mode = iota
	draining      // start nothing new; finish what is in flight
	stopping      // cancel, collect acks, exit
)

// worker owns partition i of deliveries and retries.
type worker struct {
	d    *Deliverer
	part int32

	mu    sync.Mutex
	inbox []any
	wake  chan struct{}

	tmu     sync.Mutex // guards the trackers against the committer
	live    *tracker
	retries *tracker

	sendCtx     context.Context // cancelled to abort requests and reads in flight
	cancelSends context.CancelFunc
	prodCtx     context.Context // cancelled to give up on unacked produces
	cancelProds context.CancelFunc
	noNewSends  atomic.Bool

	// The rest belongs to run's goroutine.
	lanes       map[string]*lane
	mode        mode
	caughtUp    bool
	catchKnown  bool  // retriesEnd and retriesPos are known
	retriesEnd  int64 // end offset of retries[i] at assignment
	retriesPos  int64 // where this member started reading retries[i]
	retriesNext int64 // offset after the last retries record read
	found       map[string]found
	held        []*item
	liveCount   int
	liveBytes   int64 // itemSize of the records liveCount counts
	pausedLive  bool
	// lastStallScan is when spillStalled last looked at the lanes.
	lastStallScan time.Time
	stallCheck    bool // an evStallCheck is due
	flyCheck      bool // an evInFlightCheck is due
	busy          int  // goroutines and produces whose event is due
	isDrained     bool

	drained chan struct{}
	done    chan struct{}
}

func newWorker(d *Deliverer, part int32) *worker {
	w := &worker{
		d:          d,
		part:       part,
		wake:       make(chan struct{}, 1),
		live:       newTracker(),
		retries:    newTracker(),
		lanes:      map[string]*lane{},
		found:      map[string]found{},
		pausedLive: true, // paused by the assignment
		drained:    make(chan struct{}),
		done:       make(chan struct{}),
	}
	w.sendCtx, w.cancelSends = context.WithCancel(context.Background())
	w.prodCtx, w.cancelProds = context.WithCancel(context.Background())
	return w
}

// Events posted to a worker.
type (
	evRecords struct {
		retry bool
		recs  []*kgo.Record
	}
	evCatchUp struct{ end, pos int64 }
	evResult  struct {
		l   *lane
		it  *item
		out outcome
	}
	evProduced struct {
		l         *lane // nil for a poison record
		it        *item // nil for a marker
		dead      string
		topic     string
		partition int32
		offset    int64
		err       error
	}
	evScanned struct {
		l         *lane
		gen       int
		recs      []*kgo.Record
		next, end int64
		err       error
	}
	evDisabled struct {
		l      *lane
		it     *item
		reason string
	}
	evWake       struct{ l *lane }
	evStallCheck struct{}
	// evInFlightCheck: look for requests to announce (announceInFlight).
	evInFlightCheck struct{}
	evDrain         struct{}
	evStop          struct{}
)

// post never blocks: the poll loop, send goroutines, timers and kgo's
// produce callbacks all post.
func (w *worker) post(e any) {
	w.mu.Lock()
	w.inbox = append(w.inbox, e)
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

func (w *worker) run() {
	defer close(w.done)
	defer w.cleanup()
	for range w.wake {
		w.mu.Lock()
		evs := w.inbox
		w.inbox = nil
		w.mu.Unlock()
		for _, e := range evs {
			w.handle(e)
		}
		switch w.mode {
		case running:
			w.spillStalled()
			w.updatePause()
		case draining:
			if w.busy == 0 && !w.isDrained {
				w.isDrained = true
				close(w.drained)
			}
		case stopping:
			if w.busy == 0 {
				return
			}
		}
	}
}

// stop cancels requests in flight and waits for the worker to collect the
// acks of what it produced, at most grace, then gives up on them too.
func (w *worker) stop(grace time.Duration) {
	w.noNewSends.Store(true)
	w.cancelSends()
	w.post(evStop{})
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-w.done:
		return
	case <-t.C:
	}
	w.cancelProds()
	t.Reset(grace)
	select {
	case <-w.done:
	case <-t.C:
		w.d.cfg.log.Warn("deliverer: worker did not stop", "partition", w.part)
	}
}

func (w *worker) cleanup() {
	w.cancelSends()
	w.cancelProds()
	for _, l := range w.lanes {
		if l.timer != nil {
			l.timer.Stop()
		}
		w.setBackoff(l, false)
		w.setParked(l, laneMemory)
	}
}

func (w *worker) handle(e any) {
	switch e := e.(type) {
	case evRecords:
		if e.retry {
			w.onRetries(e.recs)
		} else {
			w.onDeliveries(e.recs)
		}
	case evCatchUp:
		w.catchKnown, w.retriesEnd, w.retriesPos = true, e.end, e.pos
		w.checkCaughtUp()
	case evResult:
		w.onResult(e)
	case evProduced:
		w.onProduced(e)
	case evScanned:
		w.onScanned(e)
	case evDisabled:
		w.busy--
		e.l.disabling = false
		e.l.failingSince = time.Time{}
		if w.mode != stopping {
			w.dead(e.l, e.it, "endpoint disabled: "+e.reason, "disabled")
		}
	case evWake:
		w.pump(e.l)
	case evStallCheck:
		w.stallCheck = false
	case evInFlightCheck:
		w.announceInFlight()
	case evDrain:
		if w.mode == running {
			w.mode = draining
			w.noNewSends.Store(true)
		}
	case evStop:
		if w.mode != stopping {
			w.checkpoint()
		}
		w.mode = stopping
	}
}

func (w *worker) onDeliveries(recs []*kgo.Record) {
	if w.mode != running {
		return // not finished, so redelivered
	}
	items := make([]*item, len(recs))
	w.tmu.Lock()
	for i, r := range recs {
		r = detach(r)
		items[i] = &item{rec: r, ticket: w.live.add(r.Offset)}
		w.liveBytes += itemSize(r)
	}
	w.tmu.Unlock()
	w.liveCount += len(items)
	for _, it := range items {
		d, err := record.Parse(it.rec)
		if err != nil {
			w.poison(nil, it, err)
			continue
		}
		it.dv, it.due = d, d.NotBefore
		if !w.caughtUp {
			w.held = append(w.held, it)
			continue
		}
		w.place(it)
	}
}

// finish marks a record from deliveries done for the committer; a record
// read back from retries is done once the lane's marker has moved past it.
func (w *worker) finish(it *item) {
	if it.ticket == nil {
		return
	}
	w.tmu.Lock()
	if it.rec.Topic == w.d.cfg.topics.Retries {
		w.retries.finish(it.ticket)
	} else {
		w.live.finish(it.ticket)
		w.liveCount--
		w.liveBytes -= itemSize(it.rec)
	}
	w.tmu.Unlock()
}

// updatePause pauses fetching deliveries[i] while too many of its records,
// or too many bytes of them, are held, and until the catch-up is done. Retries[i] needs no pause: of
// what the group consumer reads there only the lanes' newest markers are
// held.
func (w *worker) updatePause() {
	want := !w.caughtUp || w.liveCount >= w.d.cfg.maxBuffered || w.liveBytes >= w.d.cfg.maxBufferedBytes
	if want == w.pausedLive {
		return
	}
	w.pausedLive = want
	tp := map[string][]int32{w.d.cfg.topics.Deliveries: {w.part}}
	if want {
		w.d.client.PauseFetchPartitions(tp)
	} else {
		w.d.client.ResumeFetchPartitions(tp)
	}
}

func (w *worker) produce(r *kgo.Record, l *lane, it *item, deadMetric string) {
	w.busy++
	w.d.client.Produce(w.prodCtx, r, func(r *kgo.Record, err error) {
		w.post(evProduced{l: l, it: it, dead: deadMetric, topic: r.Topic, partition: r.Partition, offset: r.Offset, err: err})
	})
}

func (w *worker) onProduced(e evProduced) {
	w.busy--
	l, it := e.l, e.it
	forwarded := l != nil && it != nil && e.dead == ""
	if forwarded {
		l.forwarding--
		if e.err == nil {
			l.lastForwarded = max(l.lastForwarded, e.offset)
		}
	}
	if e.err != nil {
		if w.mode != stopping {
			w.d.fail(fmt.Errorf("produce to %s/%d: %w", e.topic, e.partition, e.err))
		}
		return // unfinished: the next owner redelivers it
	}
	switch {
	case l != nil && it != nil && it == l.headCopy:
		l.copyOff = e.offset
		w.applyCopyState(l)
	case it == nil: // a marker
		if l.from < 0 && l.mode != laneMemory {
			// A lane's first marker stands for the records after it.
			l.from = e.offset
		}
	case e.dead != "":
		w.d.m.deadLettered(e.dead)
		if l != nil {
			w.complete(l, it)
		} else {
			w.finish(it)
		}
	default:
		w.finish(it)
	}
	if l != nil {
		w.pump(l)
		w.gc(l)
	}
}
