package recovery

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hookstream/hookstream/envelope"
	"github.com/hookstream/hookstream/internal/record"
	"github.com/hookstream/hookstream/subscription"
)

// Window finds the offsets of the events topic that a replay of
// [since, until) reads: per partition the first offset at or after since,
// and the first at or after until (the end offset when until is zero or
// in the future).
func Window(ctx context.Context, cl *kgo.Client, eventsTopic string, since, until time.Time) (start, end map[int32]int64, err error) {
	adm := kadm.NewClient(cl)
	starts, err := adm.ListOffsetsAfterMilli(ctx, since.UnixMilli(), eventsTopic)
	if err == nil {
		err = starts.Error()
	}
	if err != nil {
		return nil, nil, fmt.Errorf("recovery: offsets of %s at %s: %w", eventsTopic, since.Format(time.RFC3339), err)
	}
	var ends kadm.ListedOffsets
	if until.IsZero() || until.After(time.Now()) {
		ends, err = adm.ListEndOffsets(ctx, eventsTopic)
	} else {
		ends, err = adm.ListOffsetsAfterMilli(ctx, until.UnixMilli(), eventsTopic)
	}
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return nil, nil, fmt.Errorf("recovery: end offsets of %s: %w", eventsTopic, err)
	}
	start, end = map[int32]int64{}, map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) { end[o.Partition] = o.Offset })
	starts.Each(func(o kadm.ListedOffset) { start[o.Partition] = min(o.Offset, end[o.Partition]) })
	return start, end, nil
}

// Filter is what a replay sends: the tenant's events of the window that
// the endpoint subscribes to (and of Types, when given).
type Filter struct {
	Tenant   string
	Since    time.Time
	Until    time.Time // zero: no end
	Types    []string
	Endpoint *subscription.Endpoint
}

// match decodes r and reports whether it is an event the filter selects.
func (f *Filter) match(r *kgo.Record) (envelope.Event, bool) {
	if r.Attrs.IsControl() || string(record.Header(r, record.HeaderTenant)) != f.Tenant {
		return envelope.Event{}, false
	}
	if r.Timestamp.Before(f.Since) || !f.Until.IsZero() && !r.Timestamp.Before(f.Until) {
		return envelope.Event{}, false
	}
	e, err := envelope.Decode(r.Value, len(r.Value))
	if err != nil || !f.Endpoint.Matches(e.Event) {
		return envelope.Event{}, false
	}
	if len(f.Types) > 0 && !slices.Contains(f.Types, e.Event) {
		return envelope.Event{}, false
	}
	return e, true
}

// merger reads the window of the events topic partition by partition and
// hands out its records merged by timestamp (ties: partition, offset), so
// that an endpoint gets events from several partitions in the order they
// were published. cursors are the next offset to hand out per partition.
type merger struct {
	cl      *kgo.Client
	topic   string
	cursors map[int32]int64
	ends    map[int32]int64
	buf     map[int32][]*kgo.Record
	// max bounds buf per partition: a partition far ahead of the others
	// in time (denser) would otherwise be held whole. Past it, the
	// partition is paused and what comes is dropped; once its buffer is
	// handed out, it is read again from its cursor (behind).
	max    int
	behind map[int32]bool
}

// mergeBuffer is merger.max.
const mergeBuffer = 2000

func newMerger(opts []kgo.Opt, topic string, cursors, ends map[int32]int64) (*merger, error) {
	m := &merger{topic: topic, cursors: cursors, ends: ends, buf: map[int32][]*kgo.Record{}, max: mergeBuffer, behind: map[int32]bool{}}
	at := map[int32]kgo.Offset{}
	for p, c := range cursors {
		if c < ends[p] {
			at[p] = kgo.NewOffset().At(c)
		}
	}
	if len(at) == 0 {
		return m, nil
	}
	cl, err := kgo.NewClient(append(opts[:len(opts):len(opts)],
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: at}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		// Transaction markers take offsets without being records:
		// seeing them lets a partition reach its end offset exactly.
		kgo.KeepControlRecords())...)
	if err != nil {
		return nil, fmt.Errorf("recovery: kafka client: %w", err)
	}
	m.cl = cl
	return m, nil
}

func (m *merger) close() {
	if m.cl != nil {
		m.cl.Close()
	}
}

// next returns the next record of the window, or nil at its end.
func (m *merger) next(ctx context.Context) (*kgo.Record, error) {
	for {
		waiting := false
		var best *kgo.Record
		for p, end := range m.ends {
			if m.cursors[p] >= end {
				continue
			}
			if len(m.buf[p]) == 0 {
				waiting = true
				if m.behind[p] {
					// SetOffsets drops what the client buffered of p.
					m.cl.SetOffsets(map[string]map[int32]kgo.EpochOffset{m.topic: {p: {Epoch: -1, Offset: m.cursors[p]}}})
					m.cl.ResumeFetchPartitions(map[string][]int32{m.topic: {p}})
					m.behind[p] = false
				}
				break
			}
			h := m.buf[p][0]
			if best == nil || h.Timestamp.Before(best.Timestamp) ||
				h.Timestamp.Equal(best.Timestamp) && (h.Partition < best.Partition) {
				best = h
			}
		}
		if !waiting {
			if best == nil {
				return nil, nil
			}
			m.buf[best.Partition] = m.buf[best.Partition][1:]
			m.cursors[best.Partition] = best.Offset + 1
			return best, nil
		}
		if err := m.fill(ctx); err != nil {
			return nil, err
		}
	}
}

func (m *merger) fill(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, readTimeout)
	defer cancel()
	fs := m.cl.PollFetches(ctx)
	if ctx.Err() != nil {
		return fmt.Errorf("recovery: read %s: %w", m.topic, ctx.Err())
	}
	var ferr error
	fs.EachError(func(_ string, _ int32, err error) { ferr = err })
	fs.EachRecord(func(r *kgo.Record) {
		p := r.Partition
		end := m.ends[p]
		last := m.cursors[p] - 1
		if n := len(m.buf[p]); n > 0 {
			last = m.buf[p][n-1].Offset
		}
		switch {
		case r.Offset <= last:
		case r.Offset >= end:
			// Past the window: what was left below end were aborted
			// records.
			if len(m.buf[p]) == 0 {
				m.cursors[p] = end
			}
		case m.behind[p]:
			// Dropped until the buffer is handed out and p read again.
		case len(m.buf[p]) >= m.max:
			m.cl.PauseFetchPartitions(map[string][]int32{m.topic: {p}})
			m.behind[p] = true
		default:
			m.buf[p] = append(m.buf[p], r)
		}
	})
	if ferr != nil && !errors.Is(ferr, context.DeadlineExceeded) {
		return fmt.Errorf("recovery: read %s: %w", m.topic, ferr)
	}
	return nil
}

// replaySource sends a replay job's window.
type replaySource struct {
	r *runner
	m *merger
}

func (r *runner) replaySource(ctx context.Context, j *Job) (source, error) {
	if j.Cursors == nil {
		start, end, err := Window(ctx, r.s.w, r.s.cfg.Topics.Events, j.Since, j.Until)
		if err != nil {
			return nil, err
		}
		// Planned here, committed with the first step.
		j.Cursors, j.Ends, j.Total = start, end, 0
		for p, e := range end {
			j.Total += e - start[p]
		}
	} else if err := r.windowKept(ctx, j); err != nil {
		return nil, err
	}
	m, err := newMerger(r.s.cfg.ClientOpts, r.s.cfg.Topics.Events, cloneOffsets(j.Cursors), j.Ends)
	if err != nil {
		return nil, err
	}
	return &replaySource{r: r, m: m}, nil
}

// windowKept fails a resumed replay (errFail) when retention removed
// records of its window it had not read yet: the client would start past
// them at the log start, and wait for records past the window's end.
func (r *runner) windowKept(ctx context.Context, j *Job) error {
	starts, err := kadm.NewClient(r.s.w).ListStartOffsets(ctx, r.s.cfg.Topics.Events)
	if err == nil {
		err = starts.Error()
	}
	if err != nil {
		return fmt.Errorf("recovery: start offsets of %s: %w", r.s.cfg.Topics.Events, err)
	}
	var gone error
	starts.Each(func(o kadm.ListedOffset) {
		if c := j.Cursors[o.Partition]; gone == nil && c < j.Ends[o.Partition] && c < o.Offset {
			gone = errFail{fmt.Sprintf("retention removed events of the window before the replay read them (partition %d, offsets %d to %d): replay again from a later since",
				o.Partition, c, min(o.Offset, j.Ends[o.Partition])-1)}
		}
	})
	return gone
}

func (s *replaySource) close() { s.m.close() }

func cloneOffsets(m map[int32]int64) map[int32]int64 {
	out := make(map[int32]int64, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func (s *replaySource) step(ctx context.Context, j *Job, n int) ([]*kgo.Record, bool, error) {
	ep, err := s.r.endpoint(ctx, j, j.EndpointID)
	if err != nil {
		return nil, false, err
	}
	f := Filter{Tenant: j.Tenant, Since: j.Since, Until: j.Until, Types: j.Types, Endpoint: ep}
	var recs []*kgo.Record
	// Scanning other tenants' events costs little: bound it separately.
	for scanned := 0; len(recs) < n && scanned < max(20*n, 2000); scanned++ {
		r, err := s.m.next(ctx)
		if err != nil {
			return nil, false, err
		}
		if r == nil {
			break
		}
		e, ok := f.match(r)
		if !ok {
			continue
		}
		d := record.Delivery{EndpointID: ep.ID, Tenant: j.Tenant, EventID: e.ID, EventType: e.Event,
			Body: r.Value, Trigger: KindReplay, Trace: traceHeaders(r)}
		recs = append(recs, d.Record(s.r.s.cfg.Topics.Deliveries))
	}
	j.Sent += int64(len(recs))
	j.Cursors = cloneOffsets(s.m.cursors)
	j.Processed = j.Total
	done := true
	for p, e := range j.Ends {
		j.Processed -= e - j.Cursors[p]
		if j.Cursors[p] < e {
			done = false
		}
	}
	return recs, done, nil
}

func traceHeaders(r *kgo.Record) []kgo.RecordHeader {
	var out []kgo.RecordHeader
	for _, h := range r.Headers {
		if h.Key == record.HeaderTrace || h.Key == record.HeaderTraceMeta {
			out = append(out, h)
		}
	}
	return out
}

// dryRun counts what a replay with f over [start, end) would send, and
// returns up to sampleSize of them, reading the events topic.
func dryRun(ctx context.Context, opts []kgo.Opt, eventsTopic string, start, end map[int32]int64, f Filter, sampleSize int) (int64, []envelope.Event, error) {
	m, err := newMerger(opts, eventsTopic, start, end)
	if err != nil {
		return 0, nil, err
	}
	defer m.close()
	var n int64
	var sample []envelope.Event
	for {
		r, err := m.next(ctx)
		if err != nil {
			return 0, nil, err
		}
		if r == nil {
			return n, sample, nil
		}
		if e, ok := f.match(r); ok {
			n++
			if len(sample) < sampleSize {
				sample = append(sample, e)
			}
		}
	}
}
