package deliverer

import (
	"errors"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hookstream/hookstream/internal/record"
)

// A reading lane reads its records back while it holds fewer than
// readQueue of them (twice its concurrency for ordering "none"), and while
// fewer than readAhead of them were delivered out of order above its
// lowest pending one: its marker lists those.
const (
	readQueue = 32
	readAhead = 1000
)

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
