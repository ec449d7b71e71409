package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hookstream/hookstream/signature"
)

// behaviour is how one endpoint's receiver answers.
type behaviour int32

const (
	healthy   behaviour = iota // 204 at once
	blackhole                  // accepts the request and never answers
	failing                    // 500 at once
	slow                       // healthy, but answers after the recorder's delay
)

func (b behaviour) String() string {
	return [...]string{"healthy", "black-holed", "500", "slow"}[b]
}

// receivers are real HTTP servers on 127.0.0.1 playing 1,000 customer
// endpoints: endpoint i is the path /r/i on listener i mod len(listeners).
type receivers struct {
	servers []*http.Server
	bases   []string
	rec     atomic.Pointer[recorder]
	conns   atomic.Int64 // connections accepted, to see keep-alive at work
	active  atomic.Int64 // requests to healthy and slow endpoints being served now
	stop    chan struct{}
	bufs    sync.Pool
}

func startReceivers(n int) (*receivers, error) {
	rs := &receivers{stop: make(chan struct{})}
	rs.bufs.New = func() any { return new(bytes.Buffer) }
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			rs.close()
			return nil, fmt.Errorf("receiver: %w", err)
		}
		srv := &http.Server{Handler: rs, ReadHeaderTimeout: 10 * time.Second, ConnState: func(_ net.Conn, s http.ConnState) {
			if s == http.StateNew {
				rs.conns.Add(1)
			}
		}}
		rs.servers = append(rs.servers, srv)
		rs.bases = append(rs.bases, "http://"+ln.Addr().String())
		go func() { _ = srv.Serve(ln) }()
	}
	return rs, nil
}

// url is endpoint ep's URL.
func (rs *receivers) url(ep int) string {
	return rs.bases[ep%len(rs.bases)] + "/r/" + strconv.Itoa(ep)
}

// record makes rec receive every request from now on.
func (rs *receivers) record(rec *recorder) { rs.rec.Store(rec) }

func (rs *receivers) close() {
	close(rs.stop)
	for _, s := range rs.servers {
		_ = s.Close()
	}
}

func (rs *receivers) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rec := rs.rec.Load()
	ep, err := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/r/"))
	if rec == nil || err != nil || ep < 0 || ep >= len(rec.modes) {
		http.NotFound(w, r)
		return
	}
	switch rec.modes[ep] {
	case blackhole:
		rec.blackholed.Add(1)
		if !rec.hit[ep].Swap(true) {
			rec.blackholedEndpoints.Add(1)
		}
		select {
		case <-r.Context().Done():
		case <-rs.stop:
		}
		return
	case failing:
		_, _ = io.Copy(io.Discard, r.Body)
		rec.failed.Add(1)
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	// Black-holed requests hang until the scenario's processes are gone:
	// they would count in the next scenario's.
	rs.active.Add(1)
	defer rs.active.Add(-1)
	buf := rs.bufs.Get().(*bytes.Buffer)
	buf.Reset()
	_, err = buf.ReadFrom(r.Body)
	now := time.Now().UnixNano()
	if err == nil {
		rec.receive(ep, buf.Bytes(), r.Header, now)
	}
	rs.bufs.Put(buf)
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	if rec.modes[ep] == slow && rec.delay > 0 {
		// Received (and timed) now; answered as late as a distant receiver.
		t := time.NewTimer(rec.delay)
		select {
		case <-t.C:
		case <-rs.stop:
			t.Stop()
		}
	}
	w.WriteHeader(http.StatusNoContent)
}

// recorder collects what the receivers got during one scenario.
type recorder struct {
	modes   []behaviour
	fanout  int // endpoints per tenant: endpoint ep belongs to tenant endpointTenant(ep, fanout, tenants)
	tenants int
	// seen[seq] has bit ep%fanout set once that endpoint got event seq.
	seen []atomic.Uint32
	// want[tenant] is the bit set of the tenant's healthy endpoints: an
	// event is complete once all of them got it.
	want []uint32
	// complete is called once per event when it becomes complete (nil: none).
	complete func(seq int64)

	secrets     []string // per endpoint; nil: no signature checks
	verifyEvery int64
	delay       time.Duration // how long slow endpoints take to answer

	mu      sync.Mutex
	samples []sample

	received, duplicates, bad, misrouted, overflow atomic.Int64
	verified, badSignature                         atomic.Int64
	blackholed, failed                             atomic.Int64
	bodyBytes                                      atomic.Int64
	// indexLag, when set, gets every indexLagEvery-th delivery.
	indexLag *indexLag
	// hit[ep] is set once endpoint ep got a request it black-holed;
	// blackholedEndpoints counts them.
	hit                 []atomic.Bool
	blackholedEndpoints atomic.Int64
}

// newRecorder records deliveries to len(modes) endpoints of tenants tenants
// (see endpointTenant). Only the first tenants*fanout endpoints may be
// healthy: a last tenant with more, (c2)'s, is all black-holed, so its
// events are complete without any delivery.
func newRecorder(modes []behaviour, fanout, tenants, maxEvents int, complete func(int64)) *recorder {
	r := &recorder{
		modes:    modes,
		fanout:   fanout,
		tenants:  tenants,
		seen:     make([]atomic.Uint32, maxEvents),
		want:     make([]uint32, tenants),
		complete: complete,
		samples:  make([]sample, 0, 1<<16),
		hit:      make([]atomic.Bool, len(modes)),
	}
	for ep, m := range modes {
		if m == healthy || m == slow {
			r.want[ep/fanout] |= 1 << (ep % fanout)
		}
	}
	return r
}

// tenantOf is the tenant an event's sequence number is published for.
func (r *recorder) tenantOf(seq int64) int { return int(seq % int64(r.tenants)) }

func (r *recorder) receive(ep int, body []byte, h http.Header, now int64) {
	seq, sent, ok := parseBody(body)
	if !ok || seq < 0 {
		r.bad.Add(1)
		return
	}
	n := r.received.Add(1)
	r.bodyBytes.Store(int64(len(body)))
	if seq >= int64(len(r.seen)) {
		r.overflow.Add(1)
		return
	}
	t := r.tenantOf(seq)
	if endpointTenant(ep, r.fanout, r.tenants) != t {
		r.misrouted.Add(1)
		return
	}
	if r.indexLag != nil && n%indexLagEvery == 0 {
		r.indexLag.add(t, h.Get("webhook-id"), now)
	}
	if r.secrets != nil && r.verifyEvery > 0 && n%r.verifyEvery == 0 {
		if err := signature.Verify(h, body, []string{r.secrets[ep]}); err != nil {
			r.badSignature.Add(1)
		} else {
			r.verified.Add(1)
		}
	}
	bit := uint32(1) << (ep % r.fanout)
	s := &r.seen[seq]
	for {
		old := s.Load()
		if old&bit != 0 {
			r.duplicates.Add(1)
			return
		}
		if s.CompareAndSwap(old, old|bit) {
			w := r.want[t]
			if r.complete != nil && old&w != w && (old|bit)&w == w {
				r.complete(seq)
			}
			break
		}
	}
	r.mu.Lock()
	r.samples = append(r.samples, sample{endpoint: int32(ep), recv: now, latency: now - sent})
	r.mu.Unlock()
}

// snapshot returns a copy of the samples so far.
func (r *recorder) snapshot() []sample {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]sample(nil), r.samples...)
}

// incomplete counts events below n, except those in skip (their publish
// failed), that some healthy endpoint has not got.
func (r *recorder) incomplete(n int64, skip map[int64]bool) (events, deliveries int64) {
	n = min(n, int64(len(r.seen)))
	for seq := range n {
		if skip[seq] {
			continue
		}
		w := r.want[r.tenantOf(seq)]
		got := r.seen[seq].Load() & w
		if got != w {
			events++
			deliveries += int64(popcount(w) - popcount(got))
		}
	}
	return events, deliveries
}

func popcount(x uint32) int { return bits.OnesCount32(x) }

// waitComplete waits until every event below n is complete, or ctx ends.
func (r *recorder) waitComplete(ctx context.Context, n int64, skip map[int64]bool) error {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		if ev, _ := r.incomplete(n, skip); ev == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for deliveries: %w", context.Cause(ctx))
		case <-t.C:
		}
	}
}

var errNoSamples = errors.New("no deliveries received")
