package deliverer

import (
	"cmp"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// found is a marker read while catching up.
type found struct {
	m      *marker
	at     time.Time
	ticket *ticket
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

// spills reports whether a lane in backoff holds enough to park: a tenth
// of what its partition may hold, by count or by bytes.
func (w *worker) spills(l *lane) bool {
	if len(l.queue) >= max(w.d.cfg.maxBuffered/10, 1) {
		return true
	}
	var n int64
	for _, it := range l.queue {
		n += itemSize(it.rec)
	}
	return n >= w.d.cfg.maxBufferedBytes/10
}

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
