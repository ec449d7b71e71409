package deliverer

import (
	"time"
)

// stallAfter is how long a lane's head request may be in flight (or wait
// for a slot) before its lane counts as stalled.
const stallAfter = time.Second

// spillStalled parks the queues of stalled lanes once the partition holds
// half of what it may. A lane whose request hangs keeps queueing records
// until the request times out; without this, enough such lanes filled the
// partition's bound and paused its fetching for every other endpoint on it.
func (w *worker) spillStalled() {
	if w.liveCount < w.d.cfg.maxBuffered/2 && w.liveBytes < w.d.cfg.maxBufferedBytes/2 {
		return
	}
	now := time.Now()
	if now.Sub(w.lastStallScan) < 50*time.Millisecond {
		return
	}
	w.lastStallScan = now
	if !w.stallCheck {
		// Look again later: heads in flight now may stall by then, and a
		// paused partition brings no records to look again for.
		w.stallCheck = true
		time.AfterFunc(stallAfter/2, func() { w.post(evStallCheck{}) })
	}
	for _, l := range w.lanes {
		if l.mode != laneMemory || l.unordered || l.disabling || l.inflight != 1 || len(l.queue) < 2 {
			continue
		}
		if h := l.queue[0]; h.state == inflight && now.Sub(h.started) >= stallAfter {
			w.spillBehind(l, now)
		}
	}
}

// spillBehind parks a lane whose head is in flight: a marker, a copy of the
// head, then the rest of the queue go to retries in order, and the head's
// attempt goes on. When it ends (settleStalled) the copy is marked
// delivered or given the attempt's count, and the lane reads back from
// the copy. A crash meanwhile reads the copy back too: at least once, in
// order.
func (w *worker) spillBehind(l *lane, now time.Time) {
	head := l.queue[0]
	// Until the head's attempt ends; pump does not read back while it runs.
	l.until, l.from = now.Add(w.d.cfg.policy.park), -1
	l.states = nil
	w.setParked(l, laneParked)
	w.produceMarker(l)
	l.stalled, l.copyOff, l.copyState = head, -1, nil
	l.headCopy = &item{rec: head.rec, dv: head.dv}
	w.forward(l, l.headCopy)
	var batch []*item
	for _, x := range l.queue[1:] {
		if x.state == queued {
			batch = append(batch, x)
		}
	}
	for _, x := range batch {
		w.removeItem(l, x)
		w.forward(l, x)
	}
	w.d.m.stallSpills.Add(bg, 1)
}

// settleStalled deals with the end of a spilled lane's head attempt: a
// final verdict is carried out as usual, any other leaves the record to
// its copy in retries, due after the verdict's delay.
func (w *worker) settleStalled(l *lane, it *item, v verdict, out outcome, now time.Time) {
	l.stalled = nil
	st := recordState{Attempts: it.dv.Attempt, FirstTry: milli(it.dv.FirstTry)}
	switch v.act {
	case actAck, actDrop, actDead:
		w.carryOut(l, it, v, out, now)
		st.Delivered = true
		l.until = now
	default:
		l.failingSince = v.failingSince
		w.removeItem(l, it)
		w.finish(it)
		l.until = now.Add(v.delay)
	}
	l.copyState = &st
	w.applyCopyState(l)
}

// applyCopyState records what the head's attempt came to against its copy
// once Kafka has said where the copy is, and renews the marker with it.
func (w *worker) applyCopyState(l *lane) {
	if l.copyState == nil || l.copyOff < 0 {
		return
	}
	st := *l.copyState
	st.Offset = l.copyOff
	if l.states == nil {
		l.states = map[int64]recordState{}
	}
	l.states[st.Offset] = st
	l.copyState, l.headCopy = nil, nil
	w.produceMarker(l)
}
