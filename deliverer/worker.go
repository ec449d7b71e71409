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

// item is one delivery record held by a worker: read from deliveries (mark
// set), or read back from retries by its lane's drain (mark nil; rec.Offset
// is its retries offset).
type item struct {
	rec   *kgo.Record
	d     record.Delivery
	mark  *mark
	due   time.Time // no attempt before
	state itemState
}

func (it *item) parked() bool { return it.mark == nil }

type laneMode uint8

const (
	laneMemory   laneMode = iota // records come from deliveries and wait in memory
	laneParked                   // records wait in retries until the lane's until
	laneDraining                 // records are read back from retries, scanPos on
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
	// marker and applies to records as the drain reads them.
	mode     laneMode
	until    time.Time
	from     int64 // -1: the newest marker's own offset, not known yet
	marker   string
	markerAt time.Time
	// markerFrom is the newest marker's from (-1 when it is its own).
	markerFrom int64
	anchor     *mark  // the newest marker read back, held so commits stay below it
	anchorID   string // its id
	marked     map[int64]markedRecord
	// The drain: scanPos is the next retries offset to read; scanEnd the
	// end of retries seen by the last read (-1: none yet).
	scanPos, scanEnd int64
	scanGen          int // bumped to drop a read in flight
	scanning         bool
	scanWait         time.Time // after a failed read
	// forwarding counts records produced to retries and not acked yet;
	// lastForwarded is the highest retries offset acked for the lane. A
	// drain is over once it has read past both.
	forwarding    int
	lastForwarded int64
}

type mode uint8

const (
	running  mode = iota
	draining      // start nothing new; finish what is in flight
	stopping      // cancel, collect acks, exit
)

// A draining lane reads its records back while it holds fewer than
// drainQueue of them (twice its concurrency for ordering "none"), and while
// fewer than drainAhead of them were delivered out of order above its
// lowest pending one: its marker lists those.
const (
	drainQueue = 32
	drainAhead = 1000
)

// found is a marker read while catching up.
type found struct {
	m    *marker
	at   time.Time
	mark *mark
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
		items[i] = &item{rec: r, mark: w.live.add(r.Offset)}
	}
	w.tmu.Unlock()
	w.liveCount += len(items)
	for _, it := range items {
		d, err := record.Parse(it.rec)
		if err != nil {
			w.poison(nil, it, err)
			continue
		}
		it.d, it.due = d, d.NotBefore
		if !w.caughtUp {
			w.held = append(w.held, it)
			continue
		}
		w.place(it)
	}
}

// onRetries reads what the group consumer brings of retries[i]: the lanes'
// markers. Parked delivery records are finished at once: their lane's
// marker stands for them until a drain reads them back.
func (w *worker) onRetries(recs []*kgo.Record) {
	if w.mode != running {
		return
	}
	marks := make([]*mark, len(recs))
	w.tmu.Lock()
	for i, r := range recs {
		marks[i] = w.retries.add(r.Offset)
	}
	w.tmu.Unlock()
	for i, r := range recs {
		w.retriesNext = r.Offset + 1
		m, isMarker, err := parseMarker(r)
		switch {
		case err != nil:
			w.poison(nil, &item{rec: r, mark: marks[i]}, err)
		case !isMarker:
			w.finishRetry(marks[i])
		default:
			w.onMarker(m, r.Timestamp, marks[i])
		}
	}
	w.checkCaughtUp()
}

func (w *worker) finishRetry(m *mark) {
	w.tmu.Lock()
	w.retries.finish(m)
	w.tmu.Unlock()
}

// onMarker keeps the newest marker of each lane: while catching up, the
// newest one read; after, the one the lane itself produced last. Any other
// is stale.
func (w *worker) onMarker(m *marker, at time.Time, mk *mark) {
	if !w.caughtUp {
		if f, ok := w.found[m.endpoint]; ok {
			w.finishRetry(f.mark)
		}
		w.found[m.endpoint] = found{m: m, at: at, mark: mk}
		return
	}
	l := w.lanes[m.endpoint]
	if l == nil || m.kind != markerPark || l.marker != m.ID || l.mode == laneMemory {
		w.finishRetry(mk)
		return
	}
	if l.anchor != nil {
		w.finishRetry(l.anchor)
	}
	l.anchor, l.anchorID, l.markerAt = mk, m.ID, at
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
			w.finishRetry(f.mark)
			continue
		}
		l := w.lane(ep)
		l.until, l.from, l.failingSince = unixMilli(f.m.Until), f.m.From, unixMilli(f.m.FailingSince)
		l.marker, l.anchor, l.anchorID, l.markerAt, l.markerFrom = f.m.ID, f.mark, f.m.ID, f.at, f.m.From
		l.marked = map[int64]markedRecord{}
		for _, r := range f.m.Records {
			l.marked[r.Offset] = r
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

// checkpoint renews the marker of every draining lane on the way out, so
// the next owner does not send again what the drain delivered since its
// last marker. The worker stops once Kafka has them (or gives up on them).
func (w *worker) checkpoint() {
	if !w.caughtUp {
		return
	}
	for _, l := range w.lanes {
		if l.mode == laneDraining && l.from >= 0 {
			w.produceMarker(l)
		}
	}
}

// place puts a record from deliveries into its lane, or behind the lane's
// parked records in retries.
func (w *worker) place(it *item) {
	l := w.lane(it.d.EndpointID)
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

// pump moves the lane on: starts its drain when due, reads more of it,
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
			w.setParked(l, laneDraining)
		}
	}
	if l.mode == laneDraining {
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
		// offset never waits on it; a draining one also as often as
		// offsets are committed while it moves on, so that a crash sends
		// again no more of it than of a partition's live records.
		renew := l.markerAt.Add(w.d.cfg.policy.park)
		if l.mode == laneDraining && w.pendingFrom(l) != l.markerFrom {
			renew = l.markerAt.Add(min(w.d.cfg.commitEvery, w.d.cfg.policy.park))
		}
		if !now.Before(renew) {
			w.produceMarker(l)
		} else {
			at(renew)
		}
	}
	if l.mode == laneDraining {
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

// finish marks a record from deliveries done for the committer; a record a
// drain read back is done once the lane's marker has moved past it.
func (w *worker) finish(it *item) {
	if it.mark == nil {
		return
	}
	w.tmu.Lock()
	if it.rec.Topic == w.d.cfg.topics.Retries {
		w.retries.finish(it.mark)
	} else {
		w.live.finish(it.mark)
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
	if it.d.FirstTry.IsZero() {
		it.d.FirstTry = time.Now()
	}
	w.setBackoff(l, false)
	d, lim := it.d, l.limiter
	w.d.goroutines.Go(func() {
		w.post(evResult{l: l, it: it, out: w.attempt(d, lim)})
	})
}

// attempt looks the endpoint up and makes one attempt. It runs on its own
// goroutine and touches no worker state.
func (w *worker) attempt(d record.Delivery, lim *rate.Limiter) outcome {
	ctx := w.sendCtx
	ep, err := w.d.eps.Endpoint(ctx, d.EndpointID)
	switch {
	case ctx.Err() != nil:
		return outcome{kind: outAborted}
	case errors.Is(err, subscription.ErrNotFound):
		w.d.logAttempt(w.prodCtx, d, d.Attempt+1, "deleted", sender.Result{Err: errors.New("endpoint deleted")})
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
	if w.d.slots.acquire(ctx, ep.Tenant, ep.ID) != nil {
		return outcome{kind: outAborted}
	}
	if w.noNewSends.Load() {
		w.d.slots.release(ep.Tenant)
		return outcome{kind: outAborted}
	}
	scheme, err := signature.ParseScheme(ep.Signature)
	if err != nil {
		scheme = signature.Standard
	}
	req := sender.Request{
		URL:       ep.URL,
		Body:      d.Body,
		EventID:   d.EventID,
		EventType: d.EventType,
		Scheme:    scheme,
		Secrets:   ep.ActiveSecrets(time.Now()),
		Headers:   ep.Headers,
		Timeout:   ep.Timeout,
	}
	for _, h := range d.Trace {
		switch h.Key {
		case record.HeaderTrace:
			req.Traceparent = string(h.Value)
		case record.HeaderTraceMeta:
			req.Tracestate = string(h.Value)
		}
	}
	res := w.d.snd.Send(ctx, req)
	w.d.slots.release(ep.Tenant)
	if ctx.Err() != nil {
		return outcome{kind: outAborted}
	}
	w.d.m.attempt(res.Outcome.String(), res.Latency)
	w.d.logAttempt(w.prodCtx, d, d.Attempt+1, res.Outcome.String(), res)
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
	if l.mode == laneParked {
		// The lane parked while this attempt of an unordered lane ran:
		// the record's place is in retries now.
		w.settleParked(l, it, out)
		return
	}
	now := time.Now()
	if out.kind == outDeleted || out.kind == outDisabled {
		l.failingSince = time.Time{} // nothing is being tried any more
	}
	switch out.kind {
	case outDeleted:
		// After a delete no new delivery starts; the record is done.
		w.complete(l, it)
		w.d.m.finished("deleted")
	case outDisabled:
		reason := "endpoint disabled"
		if out.ep.DisabledReason != "" {
			reason += ": " + out.ep.DisabledReason
		}
		w.dead(l, it, reason, "disabled")
	case outLookupFailed:
		l.lookupFails++
		wait := min(time.Duration(l.lookupFails)*time.Second, 30*time.Second)
		it.due = now.Add(wait)
		if l.lookupFails == 1 || l.lookupFails%10 == 0 {
			w.d.cfg.log.Warn("deliverer: endpoint lookup failed", "endpoint", l.id, "err", out.err, "retry_in", wait)
		}
	case outSent:
		l.lookupFails = 0
		l.unordered = out.unordered
		it.d.Attempt++
		w.afterAttempt(l, it, out, now)
	}
	w.pump(l)
	w.gc(l)
}

// settleParked deals with an attempt that ended after its lane parked: a
// record from deliveries follows the lane to retries unless delivered; one
// read back from retries is left there, its new attempt count in marked.
func (w *worker) settleParked(l *lane, it *item, out outcome) {
	ok := out.kind == outSent && out.res.Outcome == sender.Delivered || out.kind == outDeleted
	if out.kind == outSent {
		it.d.Attempt++
	}
	switch {
	case !it.parked() && ok:
		w.complete(l, it)
	case !it.parked():
		w.removeItem(l, it)
		w.forward(l, it)
	default:
		w.removeItem(l, it)
		w.note(l, it, ok)
	}
}

// note records in marked what a record read back from retries came to, for
// the lane's next marker.
func (w *worker) note(l *lane, it *item, delivered bool) {
	off := it.rec.Offset
	if l.marked == nil {
		l.marked = map[int64]markedRecord{}
	}
	l.marked[off] = markedRecord{Offset: off, Attempts: it.d.Attempt, FirstTry: milli(it.d.FirstTry), Delivered: delivered}
}

// complete removes a finished record from its lane.
func (w *worker) complete(l *lane, it *item) {
	w.removeItem(l, it)
	w.finish(it)
	if it.parked() {
		w.note(l, it, true)
		w.prune(l)
	}
}

// prune forgets what marked says of records below the lane's lowest
// pending one: no marker needs it any more.
func (w *worker) prune(l *lane) {
	from := w.pendingFrom(l)
	for off := range l.marked {
		if off < from {
			delete(l.marked, off)
		}
	}
}

// afterAttempt acts on decide's verdict.
func (w *worker) afterAttempt(l *lane, it *item, out outcome, now time.Time) {
	act, delay := decide(out.res, it.d.Attempt, w.d.cfg.policy)
	if act == actAck {
		l.failingSince = time.Time{}
		w.complete(l, it)
		w.d.m.finished("delivered")
		return
	}
	since := oldest(l.failingSince, it.d.FirstTry)
	l.failingSince = since
	errText := lastError(out.res)
	reason := ""
	if act == actDisable {
		reason = "receiver answered 410 Gone"
	} else if after := w.d.cfg.disableAfter; after > 0 && now.Sub(since) >= after {
		act = actDisable
		reason = fmt.Sprintf("every attempt failed since %s: last error %s", since.UTC().Format(time.RFC3339), errText)
	}
	if it.parked() && (act == actRetry || act == actPark) {
		w.note(l, it, false) // the attempt counts after a restart too
	}
	due := now.Add(delay)
	switch {
	case act == actDead:
		w.dead(l, it, fmt.Sprintf("retry schedule exhausted after %d attempts: last error: %s", it.d.Attempt, errText), "exhausted")
	case act == actDisable:
		w.disable(l, it, out.ep, reason, since, now)
	case act == actRetry:
		it.due = due
		w.setBackoff(l, true)
		if l.mode == laneMemory && len(l.queue) >= w.spillAt() {
			// A long queue behind a backoff would hold the partition's
			// memory: the lane waits in retries instead.
			w.park(l, it, due)
		}
	case l.mode == laneMemory:
		w.park(l, it, due)
	case !it.parked():
		// From deliveries, in flight (ordering "none") when its lane
		// parked: it follows the lane.
		it.d.NotBefore = due
		w.removeItem(l, it)
		w.forward(l, it)
	case l.unordered:
		// The lane goes on around it, drainAhead records at most.
		it.due = due
		w.setBackoff(l, true)
	default:
		w.park(l, it, due)
	}
}

// spillAt is the queue length at which a lane in backoff parks.
func (w *worker) spillAt() int { return max(w.d.cfg.maxBuffered/10, 1) }

func oldest(ts ...time.Time) time.Time {
	var o time.Time
	for _, t := range ts {
		if !t.IsZero() && (o.IsZero() || t.Before(o)) {
			o = t
		}
	}
	return o
}

// park moves the lane to retries: it (due at until) first, then the rest of
// the lane in order. A lane in memory gets a marker ahead of its records,
// which are produced to retries; a draining lane's records are in retries
// already: its marker names the first pending one, and the drain stops.
// For an unordered lane the records still in flight stay in memory until
// their attempt ends (settleParked).
func (w *worker) park(l *lane, it *item, until time.Time) {
	w.setBackoff(l, false)
	if l.mode == laneMemory {
		it.d.NotBefore = until
		if l.unordered {
			// Only the failed record waits; the drain brings the others
			// back at once.
			until = time.Now()
		}
		l.until, l.from = until, -1
		l.marked = nil
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

// pendingFrom is the lowest retries offset a draining lane has not
// finished: its first pending record, or where its drain reads next.
func (w *worker) pendingFrom(l *lane) int64 {
	from := l.scanPos
	for _, x := range l.queue {
		if x.parked() && x.rec.Offset < from {
			if r, ok := l.marked[x.rec.Offset]; !ok || !r.Delivered {
				from = x.rec.Offset
			}
		}
	}
	return from
}

// produceMarker writes the lane's state as its newest marker.
func (w *worker) produceMarker(l *lane) {
	if l.mode == laneDraining {
		l.from = w.pendingFrom(l)
	}
	if l.from >= 0 {
		for off := range l.marked {
			if off < l.from {
				delete(l.marked, off)
			}
		}
	}
	m := &marker{kind: markerPark, endpoint: l.id, ID: newMarkerID(), From: l.from, Until: milli(l.until), FailingSince: milli(l.failingSince)}
	for _, r := range l.marked {
		m.Records = append(m.Records, r)
	}
	slices.SortFunc(m.Records, func(a, b markedRecord) int { return cmp.Compare(a.Offset, b.Offset) })
	l.marker, l.markerAt, l.markerFrom = m.ID, time.Now(), l.from
	r := m.record(w.d.cfg.topics.Retries)
	r.Partition = w.part
	w.produce(r, l, nil, "")
}

// forward produces it to retries[i] behind its lane's marker; it is
// finished once Kafka acks.
func (w *worker) forward(l *lane, it *item) {
	it.state = finishing
	r := it.d.Record(w.d.cfg.topics.Retries)
	r.Partition = w.part
	l.forwarding++
	w.d.m.parked.Add(bg, 1)
	w.produce(r, l, it, "")
}

// scan reads the next part of a draining lane's retries records, unless
// one read is running, the lane holds enough, or it has read to the end.
func (w *worker) scan(l *lane) {
	if l.scanning || len(l.queue) >= max(drainQueue, 2*w.d.cfg.unordered) || w.ahead(l) >= drainAhead {
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

// ahead counts a draining lane's records delivered above its lowest
// pending one.
func (w *worker) ahead(l *lane) int {
	n := 0
	for _, r := range l.marked {
		if r.Delivered {
			n++
		}
	}
	return n
}

func (w *worker) onScanned(e evScanned) {
	w.busy--
	l := e.l
	if e.gen != l.scanGen || l.mode != laneDraining || w.mode == stopping {
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
			m, ok := l.marked[r.Offset]
			if ok && m.Delivered {
				continue
			}
			// A copy: the read's records share its buffers, which
			// should not live as long as the lane waits.
			r = cloneRecord(r)
			d, err := record.Parse(r)
			it := &item{rec: r, d: d, due: d.NotBefore}
			if err != nil {
				l.queue = append(l.queue, it)
				w.poison(l, it, err)
				continue
			}
			if ok {
				it.d.Attempt = max(it.d.Attempt, m.Attempts)
				if m.FirstTry != 0 {
					it.d.FirstTry = unixMilli(m.FirstTry)
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

// maybeUnpark ends a drain that has delivered everything up to the end of
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
	l.marked, l.from = nil, -1
	w.setParked(l, laneMemory)
	r := m.record(w.d.cfg.topics.Retries)
	r.Partition = w.part
	w.produce(r, l, nil, "")
}

// dead dead-letters it with reason; it stays at its place in the lane, so
// an ordered lane moves on only once Kafka has the dead letter.
func (w *worker) dead(l *lane, it *item, reason, metric string) {
	it.state = finishing
	r := it.d.Record(it.rec.Topic)
	r.Partition, r.Offset = it.rec.Partition, it.rec.Offset
	w.produce(record.Dead(r, w.d.cfg.topics.Dead, reason), l, it, metric)
}

// poison dead-letters a record that is neither a delivery record nor a
// marker; l is its lane when a drain read it.
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
