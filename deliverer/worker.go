package deliverer

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
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

// HeaderFailingSince is set on records a failing lane moves to the retries
// topic: unix milliseconds of the first failure in the endpoint's current
// run of failures, so "failing since" (WithDisableAfter) survives restarts,
// rebalances and records dead-lettered in between.
const HeaderFailingSince = "hookstream-failing-since"

type itemState uint8

const (
	queued    itemState = iota // waiting in its lane
	inflight                   // an attempt is running
	finishing                  // being produced to retries or dead
)

// item is one delivery record held by a worker.
type item struct {
	rec          *kgo.Record // as consumed: topic, partition, offset
	d            record.Delivery
	retry        bool // read from the retries topic
	mark         *mark
	due          time.Time // no attempt before
	state        itemState
	failingSince time.Time // HeaderFailingSince
}

// lane is one endpoint's FIFO within a worker. Only the worker's goroutine
// touches it.
type lane struct {
	id        string
	queue     []*item
	inflight  int
	unordered bool // learned from the endpoint on each attempt
	limiter   *rate.Limiter
	timer     *time.Timer
	timerAt   time.Time
	// forwarding counts records produced to retries and not yet acked;
	// lastParked is the highest retries offset acked for this lane. Until
	// the worker has read retries past it, newer records of the lane must
	// follow it into retries.
	forwarding   int
	lastParked   int64
	failingSince time.Time
	okAt         time.Time // last 2xx seen
	lookupFails  int
	disabling    bool
	backoff      bool // counted in the lanes-in-backoff metric
}

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

	sendCtx     context.Context // cancelled to abort requests in flight
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
	held        []*item
	liveCount   int
	retryCount  int
	pausedLive  bool
	pausedRetry bool
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
		it        *item
		dead      string // dead-letter metric reason; "" for retries
		topic     string
		partition int32
		offset    int64
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
	}
}

func (w *worker) handle(e any) {
	switch e := e.(type) {
	case evRecords:
		w.onRecords(e)
	case evCatchUp:
		w.catchKnown, w.retriesEnd, w.retriesPos = true, e.end, e.pos
		w.checkCaughtUp()
	case evResult:
		w.onResult(e)
	case evProduced:
		w.onProduced(e)
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
		w.mode = stopping
	}
}

func (w *worker) onRecords(e evRecords) {
	if w.mode != running {
		return // not finished, so redelivered
	}
	items := make([]*item, len(e.recs))
	w.tmu.Lock()
	for i, r := range e.recs {
		t := w.live
		if e.retry {
			t = w.retries
		}
		items[i] = &item{rec: r, retry: e.retry, mark: t.add(r.Offset)}
	}
	w.tmu.Unlock()
	for _, it := range items {
		w.count(it, 1)
		if it.retry {
			w.retriesNext = it.rec.Offset + 1
		}
		d, err := record.Parse(it.rec)
		if err != nil {
			w.poison(it, err)
			continue
		}
		it.d, it.due = d, d.NotBefore
		if v := record.Header(it.rec, HeaderFailingSince); v != nil {
			if ms, err := strconv.ParseInt(string(v), 10, 64); err == nil {
				it.failingSince = time.UnixMilli(ms)
			}
		}
		if !it.retry && !w.caughtUp {
			w.held = append(w.held, it)
			continue
		}
		w.place(it)
	}
	w.checkCaughtUp()
}

// checkCaughtUp releases the held live records once retries has been read
// up to the end offset it had at assignment.
func (w *worker) checkCaughtUp() {
	if w.caughtUp || !w.catchKnown || max(w.retriesNext, w.retriesPos) < w.retriesEnd {
		return
	}
	w.caughtUp = true
	held := w.held
	w.held = nil
	for _, it := range held {
		w.place(it)
	}
}

// place puts a parsed record into its lane, or behind the lane's parked
// records in retries.
func (w *worker) place(it *item) {
	l := w.lane(it.d.EndpointID)
	// Records read back from retries after the catch-up are the parked
	// ones returning: they always join the lane. Anything else must not
	// overtake the lane's parked records.
	if (!it.retry || !w.caughtUp) && !l.unordered && w.parked(l) {
		w.forward(l, it)
		return
	}
	l.queue = append(l.queue, it)
	w.pump(l)
}

func (w *worker) lane(id string) *lane {
	l := w.lanes[id]
	if l == nil {
		l = &lane{id: id, limiter: rate.NewLimiter(rate.Inf, 1), lastParked: -1}
		w.lanes[id] = l
	}
	return l
}

// hasUnread: the lane has records in retries this worker has not read back.
func (w *worker) hasUnread(l *lane) bool {
	return l.forwarding > 0 || l.lastParked >= w.retriesNext
}

// parked: new records of the lane go to retries rather than memory, because
// older ones are there or its head waits longer than the park threshold.
func (w *worker) parked(l *lane) bool {
	if w.hasUnread(l) {
		return true
	}
	return len(l.queue) > 0 && time.Until(l.queue[0].due) > w.d.cfg.policy.park
}

// pump starts whatever attempts the lane may start now, or arms its timer.
func (w *worker) pump(l *lane) {
	if w.mode != running || l.disabling {
		return
	}
	now := time.Now()
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
	} else if len(l.queue) > 0 && l.inflight == 0 && l.queue[0].state == queued {
		if h := l.queue[0]; h.due.After(now) {
			next = h.due
		} else {
			w.start(l, h)
		}
	}
	if !next.IsZero() {
		w.arm(l, next)
	}
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

// gc forgets a lane with nothing left to remember.
func (w *worker) gc(l *lane) {
	if len(l.queue) > 0 || l.inflight > 0 || l.disabling || w.hasUnread(l) || !l.failingSince.IsZero() {
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

func (w *worker) count(it *item, delta int) {
	if it.retry {
		w.retryCount += delta
	} else {
		w.liveCount += delta
	}
}

// finish marks the record done for the committer.
func (w *worker) finish(it *item) {
	w.tmu.Lock()
	if it.retry {
		w.retries.finish(it.mark)
	} else {
		w.live.finish(it.mark)
	}
	w.tmu.Unlock()
	w.count(it, -1)
}

// updatePause pauses fetching a topic-partition while too many of its
// records are held, and deliveries[i] until the catch-up is done.
func (w *worker) updatePause() {
	max := w.d.cfg.maxBuffered
	set := func(topic string, want bool, cur *bool) {
		if want == *cur {
			return
		}
		*cur = want
		tp := map[string][]int32{topic: {w.part}}
		if want {
			w.d.client.PauseFetchPartitions(tp)
		} else {
			w.d.client.ResumeFetchPartitions(tp)
		}
	}
	set(w.d.cfg.topics.Deliveries, !w.caughtUp || w.liveCount >= max, &w.pausedLive)
	set(w.d.cfg.topics.Retries, w.retryCount >= max, &w.pausedRetry)
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
	<-w.d.slots
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
	now := time.Now()
	if out.kind == outDeleted || out.kind == outDisabled {
		l.failingSince = time.Time{} // nothing is being tried any more
	}
	switch out.kind {
	case outDeleted:
		// After a delete no new delivery starts; the record is done.
		w.removeItem(l, it)
		w.finish(it)
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

// afterAttempt acts on decide's verdict.
func (w *worker) afterAttempt(l *lane, it *item, out outcome, now time.Time) {
	act, delay := decide(out.res, it.d.Attempt, w.d.cfg.policy)
	if act == actAck {
		l.failingSince, l.okAt = time.Time{}, now
		w.removeItem(l, it)
		w.finish(it)
		w.d.m.finished("delivered")
		return
	}
	since := oldest(l.failingSince, it.d.FirstTry, w.carried(l, it))
	l.failingSince = since
	errText := lastError(out.res)
	reason := ""
	if act == actDisable {
		reason = "receiver answered 410 Gone"
	} else if after := w.d.cfg.disableAfter; after > 0 && now.Sub(since) >= after {
		act = actDisable
		reason = fmt.Sprintf("every attempt failed since %s: last error %s", since.UTC().Format(time.RFC3339), errText)
	}
	switch act {
	case actRetry:
		it.due = now.Add(delay)
		w.setBackoff(l, true)
	case actPark:
		if l.unordered || !w.hasUnread(l) {
			w.park(l, it, now.Add(delay))
			return
		}
		// Older records of this lane are still in retries: parking this
		// one behind them would reorder, so it waits here.
		it.due = now.Add(delay)
		w.setBackoff(l, true)
	case actDead:
		w.dead(l, it, fmt.Sprintf("retry schedule exhausted after %d attempts: last error: %s", it.d.Attempt, errText), "exhausted")
	case actDisable:
		w.disable(l, it, out.ep, reason, since, now)
	}
}

// carried is the failing-since time it carries, unless the lane has had a
// 2xx since: that run of failures ended.
func (w *worker) carried(l *lane, it *item) time.Time {
	if it.failingSince.After(l.okAt) {
		return it.failingSince
	}
	return time.Time{}
}

func oldest(ts ...time.Time) time.Time {
	var o time.Time
	for _, t := range ts {
		if !t.IsZero() && (o.IsZero() || t.Before(o)) {
			o = t
		}
	}
	return o
}

// park moves it (due at notBefore) and, for an ordered lane, every record
// queued behind it to retries, in order.
func (w *worker) park(l *lane, it *item, notBefore time.Time) {
	it.d.NotBefore = notBefore
	w.removeItem(l, it)
	batch := []*item{it}
	if !l.unordered {
		// Everything queued goes along; only an endpoint switched from
		// ordering "none" can have others still in flight, and they stay.
		rest := l.queue[:0]
		for _, x := range l.queue {
			if x.state == queued {
				batch = append(batch, x)
			} else {
				rest = append(rest, x)
			}
		}
		clear(l.queue[len(rest):])
		l.queue = rest
	}
	w.setBackoff(l, false)
	for _, x := range batch {
		w.forward(l, x)
	}
	w.d.m.parked.Add(bg, int64(len(batch)))
}

// forward produces it to retries[i]; it is finished once Kafka acks.
func (w *worker) forward(l *lane, it *item) {
	it.state = finishing
	r := it.d.Record(w.d.cfg.topics.Retries)
	r.Partition = w.part
	if since := oldest(l.failingSince, w.carried(l, it)); !since.IsZero() {
		r.Headers = append(r.Headers, kgo.RecordHeader{Key: HeaderFailingSince, Value: strconv.AppendInt(nil, since.UnixMilli(), 10)})
	}
	l.forwarding++
	w.produce(r, l, it, "")
}

// dead dead-letters it with reason; it stays at its place in the lane, so
// an ordered lane moves on only once Kafka has the dead letter.
func (w *worker) dead(l *lane, it *item, reason, metric string) {
	it.state = finishing
	r := it.d.Record(it.rec.Topic)
	r.Partition, r.Offset = it.rec.Partition, it.rec.Offset
	w.produce(record.Dead(r, w.d.cfg.topics.Dead, reason), l, it, metric)
}

// poison dead-letters a record that is not a delivery record.
func (w *worker) poison(it *item, err error) {
	it.state = finishing
	w.produce(record.Dead(it.rec, w.d.cfg.topics.Dead, err.Error()), nil, it, "malformed")
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
	if l != nil && e.dead == "" {
		l.forwarding--
		if e.err == nil {
			l.lastParked = max(l.lastParked, e.offset)
		}
	}
	if e.err != nil {
		if w.mode != stopping {
			w.d.fail(fmt.Errorf("produce to %s/%d: %w", e.topic, e.partition, e.err))
		}
		return // unfinished: the next owner redelivers it
	}
	if e.dead != "" {
		w.d.m.deadLettered(e.dead)
		if l != nil {
			w.removeItem(l, it)
		}
	}
	w.finish(it)
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
