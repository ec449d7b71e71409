package deliverer

import (
	"slices"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/time/rate"

	"github.com/hookstream/hookstream/internal/record"
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
	// started is when its attempt began (waiting for a slot included).
	started time.Time
	// sending is when its request went out (unix ns), 0 when none is
	// out: set by the attempt's goroutine, read by announceInFlight.
	sending atomic.Int64
	// announced: its request in flight was announced (logInFlight).
	announced bool
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

	// A lane spilled while its head was in flight (spillBehind): the head,
	// its copy in retries and where Kafka put it (-1: not acked yet), and
	// what the head's attempt came to, until it is recorded for the copy.
	stalled   *item
	headCopy  *item
	copyOff   int64
	copyState *recordState
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
	if l.mode == laneParked && l.from >= 0 && l.stalled == nil && l.copyState == nil {
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
