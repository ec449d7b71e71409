package deliverer

import (
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/hookstream/hookstream/internal/record"
	"github.com/hookstream/hookstream/sender"
	"github.com/hookstream/hookstream/signature"
	"github.com/hookstream/hookstream/subscription"
)

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
	it.started = time.Now()
	l.inflight++
	w.busy++
	if it.dv.FirstTry.IsZero() {
		it.dv.FirstTry = time.Now()
	}
	w.setBackoff(l, false)
	d, lim := it.dv, l.limiter
	w.d.goroutines.Go(func() {
		w.post(evResult{l: l, it: it, out: w.attempt(d, lim, &it.sending)})
	})
	if !w.flyCheck {
		w.flyCheck = true
		time.AfterFunc(InFlightAfter/2, func() { w.post(evInFlightCheck{}) })
	}
}

// announceInFlight announces the requests out for InFlightAfter or more,
// once each, so that the delivery log shows their deliveries as
// delivering rather than pending or retrying; it looks again while
// attempts run. An announcement may land after the attempt's own record:
// the log goes by attempt number, not order.
func (w *worker) announceInFlight() {
	w.flyCheck = false
	now := time.Now().UnixNano()
	for _, l := range w.lanes {
		left := l.inflight
		for _, it := range l.queue {
			if left == 0 {
				break
			}
			if it.state != inflight {
				continue
			}
			left--
			if s := it.sending.Load(); s != 0 && !it.announced && now-s >= int64(InFlightAfter) {
				it.announced = true
				w.d.logInFlight(w.prodCtx, it.dv, it.dv.Attempt+1, time.Unix(0, s))
			}
		}
	}
	if w.busy > 0 {
		w.flyCheck = true
		time.AfterFunc(InFlightAfter/2, func() { w.post(evInFlightCheck{}) })
	}
}

// attempt looks the endpoint up and makes one attempt. It runs on its own
// goroutine and touches no worker state but sending (atomic), the time its
// request went out.
func (w *worker) attempt(dv record.Delivery, lim *rate.Limiter, sending *atomic.Int64) outcome {
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
	sending.Store(time.Now().UnixNano()) // for announceInFlight
	res := w.d.snd.Send(ctx, req)
	sending.Store(0)
	w.d.slots.release(ep.Tenant)
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
	if it == l.stalled {
		w.settleStalled(l, it, v, out, f.now)
		w.pump(l)
		return
	}
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

// carryOut does what decide said.
func (w *worker) carryOut(l *lane, it *item, v verdict, out outcome, now time.Time) {
	wasFailing := l.failingSince
	l.failingSince = v.failingSince
	if it.fromRetries() && (v.act == actRetry || v.act == actPark) {
		w.note(l, it, false) // the attempt counts after a restart too
	}
	due := now.Add(v.delay)
	switch {
	case v.act == actAck:
		w.complete(l, it)
		w.d.m.finished("delivered")
		w.d.publishRecovered(w.prodCtx, out.ep, wasFailing, now)
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
		if v.metric == "exhausted" {
			w.d.publishExhausted(w.prodCtx, it.dv, fmt.Sprintf("%s/%d/%d", it.rec.Topic, it.rec.Partition, it.rec.Offset), out.res.Status, v.reason, now)
		}
	case v.act == actDisable:
		w.disable(l, it, out.ep, v.reason, v.failingSince, now)
	case v.act == actRetry:
		it.due = due
		w.setBackoff(l, true)
		if l.mode == laneMemory && w.spills(l) {
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
