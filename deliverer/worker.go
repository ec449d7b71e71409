package deliverer

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/time/rate"

	"github.com/hookstream/hookstream/internal/record"
	"github.com/hookstream/hookstream/internal/sender"
	"github.com/hookstream/hookstream/signature"
	"github.com/hookstream/hookstream/subscription"
)

type itemState uint8

const (
	queued    itemState = iota // waiting in its lane
	inflight                   // an attempt is running
	finishing                  // being produced to retries or dead
)

// item is one delivery record held by a worker: read from deliveries (ticket
// set), or read back from retries by its lane (ticket nil; rec.Offset is its
// retries offset).
type item struct {
	rec    *kgo.Record
	dv     record.Delivery
	ticket *ticket
	due    time.Time // no attempt before
	state  itemState
}

func (it *item) fromRetries() bool { return it.ticket == nil }

type laneMode uint8

const (
	laneMemory  laneMode = iota // records come from deliveries and wait in memory
	laneParked                  // records wait in retries until the lane's until
	laneReading                 // records are read back from retries, scanPos on
)

// lane is one endpoint's FIFO within a worker. Only the worker's goroutine
// touches it.
type lane struct {
	id           string
	queue        []*item
	inflight     int
	unordered    bool // learned from the endpoint on each attempt
	limiter      *rate.Limiter
	timer        *time.Timer
	timerAt      time.Time
	failingSince time.Time
	lookupFails  int
	disabling    bool
	backoff      bool // counted in the lanes-in-backoff metric

	// Parking (see the package doc). marked holds what the lane's retries
	// records at or above from do not say themselves; it goes into every
	// marker and applies to records as they are read back.
	mode     laneMode
	until    time.Time
	from     int64 // -1: the newest marker's own offset, not known yet
	marker   string
	markerAt time.Time
	// markerFrom is the newest marker's from (-1 when it is its own).
	markerFrom int64
	anchor     *ticket // the newest marker read back, held so commits stay below it
	anchorID   string  // its id
	states     map[int64]recordState
	// Reading back: scanPos is the next retries offset to read; scanEnd the
	// end of retries seen by the last read (-1: none yet).
	scanPos, scanEnd int64
	scanGen          int // bumped to drop a read in flight
	scanning         bool
	scanWait         time.Time // after a failed read
	// forwarding counts records produced to retries and not acked yet;
	// lastForwarded is the highest retries offset acked for the lane. 	// read-back is over once it has read past both.
	forwarding    int
	lastForwarded int64
}

type mode uint8

const (
	running  mode = iota
	draining      // start nothing new; finish what is in flight
	stopping      // cancel, collect acks, exit
)

// A reading lane reads its records back while it holds fewer than
// readQueue of them (twice its concurrency for ordering "none"), and while
// fewer than readAhead of them were delivered out of order above its
// lowest pending one: its marker lists those.
const (
	readQueue = 32
	readAhead = 1000
)

// found is a marker read while catching up.
type found struct {
	m      *marker
	at     time.Time
	ticket *ticket
}

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
	pausedLive  bool
	busy        int // goroutines and produces whose event is due
	isDrained   bool

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
	evWake  struct{ l *lane }
	evDrain struct{}
	evStop  struct{}
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
		items[i] = &item{rec: r, ticket: w.live.add(r.Offset)}
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

// onRetries reads what the group consumer brings of retries[i]: the lanes'
// markers. Parked delivery records are finished at once: their lane's
// marker stands for them until its lane reads them back.
func (w *worker) onRetries(recs []*kgo.Record) {
	if w.mode != running {
		return
	}
	tickets := make([]*ticket, len(recs))
	w.tmu.Lock()
	for i, r := range recs {
		tickets[i] = w.retries.add(r.Offset)
	}
	w.tmu.Unlock()
	for i, r := range recs {
		w.retriesNext = r.Offset + 1
		m, isMarker, err := parseMarker(r)
		switch {
		case err != nil:
			w.poison(nil, &item{rec: r, ticket: tickets[i]}, err)
		case !isMarker:
			w.finishRetry(tickets[i])
		default:
			w.onMarker(m, r.Timestamp, tickets[i])
		}
	}
	w.checkCaughtUp()
}

func (w *worker) finishRetry(m *ticket) {
	w.tmu.Lock()
	w.retries.finish(m)
	w.tmu.Unlock()
}

// onMarker keeps the newest marker of each lane: while catching up, the
// newest one read; after, the one the lane itself produced last. Any other
// is stale.
func (w *worker) onMarker(m *marker, at time.Time, tk *ticket) {
	if !w.caughtUp {
		if f, ok := w.found[m.endpoint]; ok {
			w.finishRetry(f.ticket)
		}
		w.found[m.endpoint] = found{m: m, at: at, ticket: tk}
		return
	}
	l := w.lanes[m.endpoint]
	if l == nil || m.kind != markerPark || l.marker != m.ID || l.mode == laneMemory {
		w.finishRetry(tk)
		return
	}
	if l.anchor != nil {
		w.finishRetry(l.anchor)
	}
	l.anchor, l.anchorID, l.markerAt = tk, m.ID, at
	if l.from < 0 {
		l.from = m.From
	}
	w.pump(l)
}

// checkCaughtUp, once retries has been read up to the end offset it had at
// assignment, restores the parked lanes from their markers, then releases
// the held live records.
func (w *worker) checkCaughtUp() {
	if w.caughtUp || !w.catchKnown || max(w.retriesNext, w.retriesPos) < w.retriesEnd {
		return
	}
	w.caughtUp = true
	for ep, f := range w.found {
		if f.m.kind != markerPark {
			w.finishRetry(f.ticket)
			continue
		}
		l := w.lane(ep)
		l.until, l.from, l.failingSince = unixMilli(f.m.Until), f.m.From, unixMilli(f.m.FailingSince)
		l.marker, l.anchor, l.anchorID, l.markerAt, l.markerFrom = f.m.ID, f.ticket, f.m.ID, f.at, f.m.From
		l.states = map[int64]recordState{}
		for _, r := range f.m.Records {
			l.states[r.Offset] = r
		}
		w.setParked(l, laneParked)
	}
	w.found = nil
	held := w.held
	w.held = nil
	for _, it := range held {
		w.place(it)
	}
	for _, l := range w.lanes {
		w.pump(l)
	}
}

// checkpoint renews the marker of every reading lane on the way out, so
// the next owner does not send again what the read-back delivered since its
// last marker. The worker stops once Kafka has them (or gives up on them).
func (w *worker) checkpoint() {
	if !w.caughtUp {
		return
	}
	for _, l := range w.lanes {
		if l.mode == laneReading && l.from >= 0 {
			w.produceMarker(l)
		}
	}
}

// place puts a record from deliveries into its lane, or behind the lane's
// parked records in retries.
func (w *worker) place(it *item) {
	l := w.lane(it.dv.EndpointID)
	if l.mode != laneMemory {
		w.forward(l, it)
		return
	}
	l.queue = append(l.queue, it)
	w.pump(l)
}

func (w *worker) lane(id string) *lane {
	l := w.lanes[id]
	if l == nil {
		l = &lane{id: id, limiter: rate.NewLimiter(rate.Inf, 1), from: -1, lastForwarded: -1, scanEnd: -1}
		w.lanes[id] = l
	}
	return l
}

// pump moves the lane on: starts reading it back when due, reads more of it,
// starts whatever attempts may start now, renews its marker, and arms its
// timer for the next of these.
func (w *worker) pump(l *lane) {
	if w.mode != running || l.disabling {
		return
	}
	now := time.Now()
	var next time.Time
	at := func(t time.Time) {
		if next.IsZero() || t.Before(next) {
			next = t
		}
	}
	if l.mode == laneParked && l.from >= 0 {
		if now.Before(l.until) {
			at(l.until)
		} else {
			l.scanPos, l.scanEnd = l.from, -1
			w.setParked(l, laneReading)
		}
	}
	if l.mode == laneReading {
		if now.Before(l.scanWait) {
			at(l.scanWait)
		} else {
			w.scan(l)
		}
	}
	if l.mode != laneParked {
		at(w.startDue(l, now))
	}
	if l.mode != laneMemory && l.anchor != nil && l.anchorID == l.marker {
		// A waiting lane renews its marker so that retries' committed
		// offset never waits on it; a reading one also as often as
		// offsets are committed while it moves on, so that a crash sends
		// again no more of it than of a partition's live records.
		renew := l.markerAt.Add(w.d.cfg.policy.park)
		if l.mode == laneReading && w.pendingFrom(l) != l.markerFrom {
			renew = l.markerAt.Add(min(w.d.cfg.commitEvery, w.d.cfg.policy.park))
		}
		if !now.Before(renew) {
			w.produceMarker(l)
		} else {
			at(renew)
		}
	}
	if l.mode == laneReading {
		w.maybeUnpark(l)
	}
	if !next.IsZero() {
		w.arm(l, next)
	}
}

// startDue starts the attempts the lane may start now and returns when the
// next one is due (zero: none is waiting).
func (w *worker) startDue(l *lane, now time.Time) time.Time {
	var next time.Time
	if l.unordered {
		for _, it := range l.queue {
			if l.inflight >= w.d.cfg.unordered {
				break
			}
			if it.state != queued {
				continue
			}
			if it.due.After(now) {
				if next.IsZero() || it.due.Before(next) {
					next = it.due
				}
				continue
			}
			w.start(l, it)
		}
		return next
	}
	if len(l.queue) > 0 && l.inflight == 0 && l.queue[0].state == queued {
		if h := l.queue[0]; h.due.After(now) {
			return h.due
		}
		w.start(l, l.queue[0])
	}
	return next
}

func (w *worker) arm(l *lane, at time.Time) {
	if l.timer != nil {
		if l.timerAt.Equal(at) {
			return
		}
		l.timer.Stop()
	}
	l.timerAt = at
	l.timer = time.AfterFunc(time.Until(at), func() { w.post(evWake{l}) })
}

func (w *worker) setBackoff(l *lane, on bool) {
	if l.backoff == on {
		return
	}
	l.backoff = on
	if on {
		w.d.m.backoff.Add(bg, 1)
	} else {
		w.d.m.backoff.Add(bg, -1)
	}
}

// setParked changes the lane's mode, keeping the parked-lanes gauge.
func (w *worker) setParked(l *lane, m laneMode) {
	switch {
	case l.mode == laneMemory && m != laneMemory:
		w.d.m.parkedLanes.Add(bg, 1)
	case l.mode != laneMemory && m == laneMemory:
		w.d.m.parkedLanes.Add(bg, -1)
	}
	l.mode = m
}

// gc forgets a lane with nothing left to remember.
func (w *worker) gc(l *lane) {
	if len(l.queue) > 0 || l.inflight > 0 || l.disabling || l.mode != laneMemory || l.forwarding > 0 || !l.failingSince.IsZero() {
		return
	}
	if l.timer != nil {
		l.timer.Stop()
	}
	w.setBackoff(l, false)
	if w.lanes[l.id] == l {
		delete(w.lanes, l.id)
	}
}

func (w *worker) removeItem(l *lane, it *item) {
	i := slices.Index(l.queue, it)
	switch {
	case i < 0:
	case i == 0:
		l.queue[0] = nil
		l.queue = l.queue[1:]
	default:
		l.queue = slices.Delete(l.queue, i, i+1)
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
	}
	w.tmu.Unlock()
}

// updatePause pauses fetching deliveries[i] while too many of its records
// are held, and until the catch-up is done. Retries[i] needs no pause: of
// what the group consumer reads there only the lanes' newest markers are
// held.
func (w *worker) updatePause() {
	want := !w.caughtUp || w.liveCount >= w.d.cfg.maxBuffered
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

// outcome is what an attempt goroutine reports.
type outcome struct {
	kind      outcomeKind
	res       sender.Result
	ep        *subscription.Endpoint
	unordered bool
	err       error
}

type outcomeKind uint8

const (
	outAborted      outcomeKind = iota // stopped before or while sending
	outSent                            // res holds the answer
	outDeleted                         // endpoint deleted
	outDisabled                        // endpoint disabled
	outLookupFailed                    // the store did not answer
)

func (w *worker) start(l *lane, it *item) {
	it.state = inflight
	l.inflight++
	w.busy++
	if it.dv.FirstTry.IsZero() {
		it.dv.FirstTry = time.Now()
	}
	w.setBackoff(l, false)
	d, lim := it.dv, l.limiter
	w.d.goroutines.Go(func() {
		w.post(evResult{l: l, it: it, out: w.attempt(d, lim)})
	})
}

// attempt looks the endpoint up and makes one attempt. It runs on its own
// goroutine and touches no worker state.
func (w *worker) attempt(dv record.Delivery, lim *rate.Limiter) outcome {
	ctx := w.sendCtx
	ep, err := w.d.eps.Endpoint(ctx, dv.EndpointID)
	switch {
	case ctx.Err() != nil:
		return outcome{kind: outAborted}
	case errors.Is(err, subscription.ErrNotFound):
		w.d.logAttempt(w.prodCtx, dv, dv.Attempt+1, "deleted", sender.Result{Err: errors.New("endpoint deleted")})
		return outcome{kind: outDeleted}
	case err != nil:
		return outcome{kind: outLookupFailed, err: err}
	case ep.Disabled:
		return outcome{kind: outDisabled, ep: ep}
	}
	if ep.RateLimit > 0 {
		lim.SetLimit(rate.Limit(ep.RateLimit))
		lim.SetBurst(ep.RateLimit)
	} else {
		lim.SetLimit(rate.Inf)
	}
	if lim.Wait(ctx) != nil {
		return outcome{kind: outAborted}
	}
	select {
	case w.d.slots <- struct{}{}:
	case <-ctx.Done():
		return outcome{kind: outAborted}
	}
	if w.noNewSends.Load() {
		<-w.d.slots
		return outcome{kind: outAborted}
	}
	scheme, err := signature.ParseScheme(ep.Signature)
	if err != nil {
		scheme = signature.Standard
	}
	req := sender.Request{
		URL:       ep.URL,
		Body:      dv.Body,
		EventID:   dv.EventID,
		EventType: dv.EventType,
		Scheme:    scheme,
		Secrets:   ep.ActiveSecrets(time.Now()),
		Headers:   ep.Headers,
		Timeout:   ep.Timeout,
	}
	for _, h := range dv.Trace {
		switch h.Key {
		case record.HeaderTrace:
			req.Traceparent = string(h.Value)
		case record.HeaderTraceMeta:
			req.Tracestate = string(h.Value)
		}
	}
	res := w.d.snd.Send(ctx, req)
	<-w.d.slots
	if ctx.Err() != nil {
		return outcome{kind: outAborted}
	}
	w.d.m.attempt(res.Outcome.String(), res.Latency)
	w.d.logAttempt(w.prodCtx, dv, dv.Attempt+1, res.Outcome.String(), res)
	return outcome{kind: outSent, res: res, ep: ep, unordered: ep.Ordering == subscription.OrderingNone}
}

func (w *worker) onResult(e evResult) {
	w.busy--
	l, it, out := e.l, e.it, e.out
	l.inflight--
	it.state = queued
	if w.mode == stopping || out.kind == outAborted {
		return // unfinished: the next owner tries again
	}
	switch out.kind {
	case outSent:
		l.lookupFails = 0
		l.unordered = out.unordered
		it.dv.Attempt++
	case outLookupFailed:
		l.lookupFails++
	}
	f := facts{
		kind:         out.kind,
		res:          out.res,
		attempt:      it.dv.Attempt,
		firstTry:     it.dv.FirstTry,
		failingSince: l.failingSince,
		lookupFails:  l.lookupFails,
		now:          time.Now(),
	}
	if out.kind == outDisabled {
		f.disabledReason = out.ep.DisabledReason
	}
	v := decide(f, w.d.cfg.policy)
	if l.mode == laneParked {
		// The lane parked while this attempt of an unordered lane ran:
		// the record's place is in retries now.
		w.settleParked(l, it, v)
		return
	}
	w.carryOut(l, it, v, out, f.now)
	w.pump(l)
	w.gc(l)
}

// settleParked deals with an attempt that ended after its lane parked: a
// record from deliveries follows the lane to retries unless finished; one
// read back from retries is left there, its new attempt count in states.
func (w *worker) settleParked(l *lane, it *item, v verdict) {
	done := v.act == actAck || v.act == actDrop
	switch {
	case !it.fromRetries() && done:
		w.complete(l, it)
	case !it.fromRetries():
		w.removeItem(l, it)
		w.forward(l, it)
	default:
		w.removeItem(l, it)
		w.note(l, it, done)
	}
}

// note records in marked what a record read back from retries came to, for
// the lane's next marker.
func (w *worker) note(l *lane, it *item, delivered bool) {
	off := it.rec.Offset
	if l.states == nil {
		l.states = map[int64]recordState{}
	}
	l.states[off] = recordState{Offset: off, Attempts: it.dv.Attempt, FirstTry: milli(it.dv.FirstTry), Delivered: delivered}
}

// complete removes a finished record from its lane.
func (w *worker) complete(l *lane, it *item) {
	w.removeItem(l, it)
	w.finish(it)
	if it.fromRetries() {
		w.note(l, it, true)
		w.prune(l)
	}
}

// prune forgets what marked says of records below the lane's lowest
// pending one: no marker needs it any more.
func (w *worker) prune(l *lane) {
	from := w.pendingFrom(l)
	for off := range l.states {
		if off < from {
			delete(l.states, off)
		}
	}
}

// carryOut does what decide said.
func (w *worker) carryOut(l *lane, it *item, v verdict, out outcome, now time.Time) {
	l.failingSince = v.failingSince
	if it.fromRetries() && (v.act == actRetry || v.act == actPark) {
		w.note(l, it, false) // the attempt counts after a restart too
	}
	due := now.Add(v.delay)
	switch {
	case v.act == actAck:
		w.complete(l, it)
		w.d.m.finished("delivered")
	case v.act == actDrop:
		w.complete(l, it)
		w.d.m.finished("deleted")
	case v.act == actWait:
		it.due = due
		if l.lookupFails == 1 || l.lookupFails%10 == 0 {
			w.d.cfg.log.Warn("deliverer: endpoint lookup failed", "endpoint", l.id, "err", out.err, "retry_in", v.delay)
		}
	case v.act == actDead:
		w.dead(l, it, v.reason, v.metric)
	case v.act == actDisable:
		w.disable(l, it, out.ep, v.reason, v.failingSince, now)
	case v.act == actRetry:
		it.due = due
		w.setBackoff(l, true)
		if l.mode == laneMemory && len(l.queue) >= w.spillAt() {
			// A long queue behind a backoff would hold the partition's
			// memory: the lane waits in retries instead.
			w.park(l, it, due)
		}
	case l.mode == laneMemory:
		w.park(l, it, due)
	case !it.fromRetries():
		// From deliveries, in flight (ordering "none") when its lane
		// parked: it follows the lane.
		it.dv.NotBefore = due
		w.removeItem(l, it)
		w.forward(l, it)
	case l.unordered:
		// The lane goes on around it, readAhead records at most.
		it.due = due
		w.setBackoff(l, true)
	default:
		w.park(l, it, due)
	}
}

// spillAt is the queue length at which a lane in backoff parks.
func (w *worker) spillAt() int { return max(w.d.cfg.maxBuffered/10, 1) }

// park moves the lane to retries: it (due at until) first, then the rest of
// the lane in order. A lane in memory gets a marker ahead of its records,
// which are produced to retries; a reading lane's records are in retries
// already: its marker names the first pending one, and reading back stops.
// For an unordered lane the records still in flight stay in memory until
// their attempt ends (settleParked).
func (w *worker) park(l *lane, it *item, until time.Time) {
	w.setBackoff(l, false)
	if l.mode == laneMemory {
		it.dv.NotBefore = until
		if l.unordered {
			// Only the failed record waits; reading back brings the others
			// back at once.
			until = time.Now()
		}
		l.until, l.from = until, -1
		l.states = nil
		w.setParked(l, laneParked)
		w.produceMarker(l)
		batch := []*item{it}
		for _, x := range l.queue {
			if x != it && x.state == queued {
				batch = append(batch, x)
			}
		}
		for _, x := range batch {
			w.removeItem(l, x)
			w.forward(l, x)
		}
		return
	}
	w.note(l, it, false)
	l.from = w.pendingFrom(l)
	l.until = until
	l.scanGen++
	l.scanning = false
	rest := l.queue[:0]
	for _, x := range l.queue {
		if x.state == inflight {
			rest = append(rest, x)
		}
	}
	clear(l.queue[len(rest):])
	l.queue = rest
	w.setParked(l, laneParked)
	w.produceMarker(l)
}

// pendingFrom is the lowest retries offset a reading lane has not
// finished: its first pending record, or where it reads next.
func (w *worker) pendingFrom(l *lane) int64 {
	from := l.scanPos
	for _, x := range l.queue {
		if x.fromRetries() && x.rec.Offset < from {
			if r, ok := l.states[x.rec.Offset]; !ok || !r.Delivered {
				from = x.rec.Offset
			}
		}
	}
	return from
}

// produceMarker writes the lane's state as its newest marker.
func (w *worker) produceMarker(l *lane) {
	if l.mode == laneReading {
		l.from = w.pendingFrom(l)
	}
	if l.from >= 0 {
		for off := range l.states {
			if off < l.from {
				delete(l.states, off)
			}
		}
	}
	m := &marker{kind: markerPark, endpoint: l.id, ID: newMarkerID(), From: l.from, Until: milli(l.until), FailingSince: milli(l.failingSince)}
	for _, r := range l.states {
		m.Records = append(m.Records, r)
	}
	slices.SortFunc(m.Records, func(a, b recordState) int { return cmp.Compare(a.Offset, b.Offset) })
	l.marker, l.markerAt, l.markerFrom = m.ID, time.Now(), l.from
	r := m.record(w.d.cfg.topics.Retries)
	r.Partition = w.part
	w.produce(r, l, nil, "")
}

// forward produces it to retries[i] behind its lane's marker; it is
// finished once Kafka acks.
func (w *worker) forward(l *lane, it *item) {
	it.state = finishing
	r := it.dv.Record(w.d.cfg.topics.Retries)
	r.Partition = w.part
	l.forwarding++
	w.d.m.parked.Add(bg, 1)
	w.produce(r, l, it, "")
}

// scan reads the next part of a reading lane's retries records, unless
// one read is running, the lane holds enough, or it has read to the end.
func (w *worker) scan(l *lane) {
	if l.scanning || len(l.queue) >= max(readQueue, 2*w.d.cfg.unordered) || w.ahead(l) >= readAhead {
		return
	}
	atEnd := l.scanEnd >= 0 && l.scanPos >= l.scanEnd
	if atEnd && (l.forwarding > 0 || l.lastForwarded < l.scanPos) {
		return // nothing new to read, or wait for the acks
	}
	l.scanning = true
	w.busy++
	gen, pos, ctx := l.scanGen, l.scanPos, w.sendCtx
	go func() {
		recs, next, end, err := w.d.reader.read(ctx, w.part, pos)
		w.post(evScanned{l: l, gen: gen, recs: recs, next: next, end: end, err: err})
	}()
}

// ahead counts a reading lane's records delivered above its lowest
// pending one.
func (w *worker) ahead(l *lane) int {
	n := 0
	for _, r := range l.states {
		if r.Delivered {
			n++
		}
	}
	return n
}

func (w *worker) onScanned(e evScanned) {
	w.busy--
	l := e.l
	if e.gen != l.scanGen || l.mode != laneReading || w.mode == stopping {
		return
	}
	l.scanning = false
	switch {
	case errors.Is(e.err, errExpired):
		w.d.cfg.log.Error("deliverer: parked records expired in retries before delivery: raise the retries topic's retention.ms",
			"endpoint", l.id, "partition", w.part, "err", e.err)
		w.d.m.expired.Add(bg, 1)
		l.scanPos = e.next
	case e.err != nil:
		if w.mode == running {
			w.d.cfg.log.Warn("deliverer: reading retries", "endpoint", l.id, "partition", w.part, "err", e.err)
		}
		l.scanWait = time.Now().Add(time.Second)
	default:
		before := l.scanPos
		for _, r := range e.recs {
			if r.Offset < l.scanPos {
				continue
			}
			l.scanPos = r.Offset + 1
			if string(record.Header(r, record.HeaderEndpoint)) != l.id || record.Header(r, HeaderMarker) != nil {
				continue
			}
			m, ok := l.states[r.Offset]
			if ok && m.Delivered {
				continue
			}
			// A copy: the read's records share its buffers, which
			// should not live as long as the lane waits.
			r = cloneRecord(r)
			d, err := record.Parse(r)
			it := &item{rec: r, dv: d, due: d.NotBefore}
			if err != nil {
				l.queue = append(l.queue, it)
				w.poison(l, it, err)
				continue
			}
			if ok {
				it.dv.Attempt = max(it.dv.Attempt, m.Attempts)
				if m.FirstTry != 0 {
					it.dv.FirstTry = unixMilli(m.FirstTry)
				}
			}
			l.queue = append(l.queue, it)
		}
		l.scanPos = max(l.scanPos, e.next)
		l.scanEnd = e.end
		if l.scanPos == before && l.scanPos < l.scanEnd {
			l.scanWait = time.Now().Add(100 * time.Millisecond) // no progress: do not spin
		}
	}
	w.pump(l)
}

func cloneRecord(r *kgo.Record) *kgo.Record {
	c := *r
	c.Key, c.Value = slices.Clone(r.Key), slices.Clone(r.Value)
	c.Headers = make([]kgo.RecordHeader, len(r.Headers))
	for i, h := range r.Headers {
		c.Headers[i] = kgo.RecordHeader{Key: h.Key, Value: slices.Clone(h.Value)}
	}
	return &c
}

// maybeUnpark ends a read-back that has delivered everything up to the end of
// retries: the lane is in memory again, and its done marker tells a later
// owner so.
func (w *worker) maybeUnpark(l *lane) {
	if l.scanning || l.scanEnd < 0 || l.scanPos < l.scanEnd || l.forwarding > 0 || l.lastForwarded >= l.scanPos ||
		len(l.queue) > 0 || l.inflight > 0 || l.disabling {
		return
	}
	if l.anchor != nil {
		w.finishRetry(l.anchor)
		l.anchor, l.anchorID = nil, ""
	}
	m := &marker{kind: markerDone, endpoint: l.id, ID: newMarkerID()}
	l.marker = m.ID
	l.states, l.from = nil, -1
	w.setParked(l, laneMemory)
	r := m.record(w.d.cfg.topics.Retries)
	r.Partition = w.part
	w.produce(r, l, nil, "")
}

// dead dead-letters it with reason; it stays at its place in the lane, so
// an ordered lane moves on only once Kafka has the dead letter.
func (w *worker) dead(l *lane, it *item, reason, metric string) {
	it.state = finishing
	r := it.dv.Record(it.rec.Topic)
	r.Partition, r.Offset = it.rec.Partition, it.rec.Offset
	w.produce(record.Dead(r, w.d.cfg.topics.Dead, reason), l, it, metric)
}

// poison dead-letters a record that is neither a delivery record nor a
// marker; l is its lane when it was read back.
func (w *worker) poison(l *lane, it *item, err error) {
	it.state = finishing
	w.produce(record.Dead(it.rec, w.d.cfg.topics.Dead, err.Error()), l, it, "malformed")
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

// disable disables the endpoint, publishes endpoint.disabled, then
// dead-letters it. The lane waits, so no later record is sent meanwhile.
func (w *worker) disable(l *lane, it *item, ep *subscription.Endpoint, reason string, since, now time.Time) {
	if l.disabling {
		w.dead(l, it, "endpoint disabled: "+reason, "disabled")
		return
	}
	it.state = finishing
	l.disabling = true
	w.busy++
	if since.IsZero() {
		since = now
	}
	go func() {
		w.d.disableEndpoint(w.prodCtx, ep, reason, since, now)
		w.post(evDisabled{l: l, it: it, reason: reason})
	}()
}
