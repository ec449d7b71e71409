package recovery

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/segmentio/encoding/json"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hookstream/hookstream/deliverer"
	"github.com/hookstream/hookstream/envelope"
	"github.com/hookstream/hookstream/internal/record"
	"github.com/hookstream/hookstream/subscription"
)

// EventCompleted is the operational event published when a job ends.
const EventCompleted = "job.completed"

// runner runs jobs while this process leads; its transactional client
// writes every step.
type runner struct {
	s   *Service
	txn *kgo.Client
	mu  sync.Mutex // one transaction at a time on txn
}

// source is where a job's next delivery records come from.
type source interface {
	// step returns up to n delivery records and advances j's progress
	// (not yet committed). done: nothing is left after them.
	step(ctx context.Context, j *Job, n int) (recs []*kgo.Record, done bool, err error)
	close()
}

// run runs j until it ends or ctx does (the process stops leading: the
// next leader resumes j from its last committed state).
func (r *runner) run(ctx context.Context, j Job) {
	log := r.s.log.With("job", j.ID, "kind", j.Kind, "tenant", j.Tenant)
	var src source
	defer func() {
		if src != nil {
			src.close()
		}
	}()
	batch, interval := pace(j.Rate, r.s.cfg.Step)
	wait := time.Duration(0)
	written := map[int32]int64{} // per deliveries partition, the offset after the job's last record
	for ctx.Err() == nil {
		if wait > 0 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
		}
		start := time.Now()
		if r.s.canceled(j.ID) {
			if err := r.finish(ctx, &j, StateCanceled, ""); err != nil {
				log.Warn("recovery: cancel", "err", err)
				wait = time.Second
				continue
			}
			return
		}
		if ahead, err := r.ahead(ctx, written); err != nil || ahead {
			if err != nil {
				log.Warn("recovery: deliverer offsets", "err", err)
			}
			wait = r.s.cfg.Step
			continue
		}
		if src == nil {
			var err error
			if src, err = r.source(ctx, &j); err != nil {
				if r.failed(ctx, &j, err) {
					return
				}
				log.Warn("recovery: job source", "err", err)
				wait = time.Second
				continue
			}
		}
		next := j
		if next.State == StateQueued {
			next.State, next.StartedAt = StateRunning, time.Now().UTC()
		}
		recs, done, err := src.step(ctx, &next, batch)
		if err == nil && done {
			next.State, next.FinishedAt = StateDone, time.Now().UTC()
			next.Processed = next.Total
		}
		if err == nil {
			err = r.commit(ctx, &next, recs)
		}
		if err == nil {
			for _, rec := range recs {
				written[rec.Partition] = max(written[rec.Partition], rec.Offset+1)
			}
		}
		if err != nil {
			// Nothing of the step was committed: start it again from
			// the last committed state, with a fresh source.
			src.close()
			src = nil
			if r.failed(ctx, &j, err) {
				return
			}
			if ctx.Err() == nil {
				log.Warn("recovery: step failed, retrying", "err", err)
			}
			wait = time.Second
			continue
		}
		j = next
		if j.Finished() {
			r.completed(ctx, &j)
			return
		}
		wait = interval - time.Since(start)
	}
}

// pace returns how many records a job at rate per second writes per step,
// and how often: about one step each, the step stretched or shortened so
// that whole batches keep the rate (1/s is a record a second, not one a
// step).
func pace(rate int, step time.Duration) (batch int, interval time.Duration) {
	if rate <= 0 {
		rate = DefaultRate
	}
	batch = max(1, int(math.Round(float64(rate)*step.Seconds())))
	return batch, time.Duration(float64(batch) / float64(rate) * float64(time.Second))
}

// ahead reports whether the job is more than MaxLead records ahead of the
// deliverer in a deliveries partition it wrote to.
func (r *runner) ahead(ctx context.Context, written map[int32]int64) (bool, error) {
	if r.s.cfg.MaxLead <= 0 || len(written) == 0 {
		return false, nil
	}
	offs, err := kadm.NewClient(r.s.w).FetchOffsets(ctx, deliverer.Group)
	if errors.Is(err, kerr.GroupIDNotFound) {
		// No deliverer committed yet: everything written is ahead.
		err = nil
	}
	if err != nil {
		return false, err
	}
	for p, end := range written {
		committed := int64(0)
		if o, ok := offs.Lookup(r.s.cfg.Topics.Deliveries, p); ok && o.Err == nil {
			committed = o.At
		}
		if end-committed > r.s.cfg.MaxLead {
			return true, nil
		}
	}
	return false, nil
}

// failed ends j failed when err says so, and reports whether it did.
func (r *runner) failed(ctx context.Context, j *Job, err error) bool {
	var f errFail
	if !errors.As(err, &f) {
		return false
	}
	if ferr := r.finish(ctx, j, StateFailed, f.reason); ferr != nil {
		r.s.log.Warn("recovery: fail job", "job", j.ID, "err", ferr)
		return false
	}
	return true
}

// finish writes j's final state.
func (r *runner) finish(ctx context.Context, j *Job, state, reason string) error {
	next := *j
	next.State, next.Error, next.FinishedAt = state, reason, time.Now().UTC()
	if err := r.commit(ctx, &next, nil); err != nil {
		return err
	}
	*j = next
	r.completed(ctx, j)
	return nil
}

// commit writes recs and j's next state in one transaction, then shows
// the state in memory.
func (r *runner) commit(ctx context.Context, j *Job, recs []*kgo.Record) error {
	j.Seq++
	state, err := r.s.stateRecord(j)
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.txn.BeginTransaction(); err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	// Once the records are produced the step finishes even when ctx
	// ends: a committed step is never redone.
	ectx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	var first kgo.FirstErrPromise
	for _, rec := range recs {
		r.txn.Produce(ectx, rec, first.Promise())
	}
	r.txn.Produce(ectx, state, first.Promise())
	ferr := r.txn.Flush(ectx)
	if ferr == nil {
		ferr = first.Err()
	}
	commit := kgo.TryCommit
	if ferr != nil {
		commit = kgo.TryAbort
	}
	if err := r.txn.EndTransaction(ectx, commit); err != nil {
		return errors.Join(ferr, fmt.Errorf("end transaction: %w", err))
	}
	if ferr != nil {
		return fmt.Errorf("produce: %w", ferr)
	}
	r.s.mu.Lock()
	r.s.put(j)
	r.s.mu.Unlock()
	return nil
}

// completedEvent is the data of job.completed (schemas/job.completed.json).
type completedEvent struct {
	JobID      string `json:"job_id"`
	Kind       string `json:"kind"`
	EndpointID string `json:"endpoint_id,omitempty"`
	State      string `json:"state"`
	Total      int64  `json:"total"`
	Processed  int64  `json:"processed"`
	Sent       int64  `json:"sent"`
	Failed     int64  `json:"failed"`
	Error      string `json:"error,omitempty"`
	FinishedAt string `json:"finished_at"`
}

// completed publishes job.completed for j. A failure is logged: the
// job's state in the jobs topic is the record that counts.
func (r *runner) completed(ctx context.Context, j *Job) {
	r.s.log.Info("recovery: job ended", "job", j.ID, "kind", j.Kind, "state", j.State,
		"sent", j.Sent, "failed", j.Failed, "error", j.Error)
	if r.s.cfg.Publisher == nil {
		return
	}
	data, err := json.Marshal(completedEvent{
		JobID: j.ID, Kind: j.Kind, EndpointID: j.EndpointID, State: j.State,
		Total: j.Total, Processed: j.Processed, Sent: j.Sent, Failed: j.Failed, Error: j.Error,
		FinishedAt: j.FinishedAt.UTC().Format(time.RFC3339),
	})
	if err != nil {
		return
	}
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if _, err := r.s.cfg.Publisher.Publish(pctx, j.Tenant, EventCompleted, data); err != nil {
		r.s.log.Error("recovery: publish job.completed", "job", j.ID, "err", err)
	}
}

// source builds j's source.
func (r *runner) source(ctx context.Context, j *Job) (source, error) {
	switch j.Kind {
	case KindReplay:
		return r.replaySource(ctx, j)
	case KindResend, KindRecover:
		items, ok := r.s.plan(j)
		if !ok {
			return nil, errNotReady
		}
		return &planSource{r: r, items: items, reader: newLocReader(r.s.cfg.ClientOpts, r.s.cfg.Topics.Deliveries),
			events: newLocReader(r.s.cfg.ClientOpts, r.s.cfg.Topics.Events)}, nil
	}
	return nil, errFail{fmt.Sprintf("unknown job kind %q", j.Kind)}
}

// endpoint returns the job's endpoint; a deleted or disabled one fails
// the job (the deliverer would dead-letter everything it sent there).
func (r *runner) endpoint(ctx context.Context, j *Job, id string) (*subscription.Endpoint, error) {
	ep, err := r.s.cfg.Endpoints.Get(ctx, j.Tenant, id)
	if errors.Is(err, subscription.ErrNotFound) {
		return nil, errFail{fmt.Sprintf("endpoint %s was deleted", id)}
	}
	if err == nil && ep.Disabled {
		return nil, errFail{fmt.Sprintf("endpoint %s is disabled (%s): enable it, then recover", id, ep.DisabledReason)}
	}
	return ep, err
}

// planSource sends a resend or recover job's planned records again.
type planSource struct {
	r      *runner
	items  []Item
	reader *locReader // the deliveries topic
	events *locReader // the events topic
}

func (p *planSource) close() {
	p.reader.close()
	p.events.close()
}

func (p *planSource) step(ctx context.Context, j *Job, n int) ([]*kgo.Record, bool, error) {
	var recs []*kgo.Record
	gone := map[string]bool{}
	for j.Next < int64(len(p.items)) && len(recs) < n {
		it := p.items[j.Next]
		if _, seen := gone[it.EndpointID]; !seen {
			_, err := p.r.endpoint(ctx, j, it.EndpointID)
			var f errFail
			switch {
			case errors.As(err, &f) && j.Kind == KindResend:
				// One endpoint of a resend gone: the others still get it.
				gone[it.EndpointID] = true
			case err != nil:
				return nil, false, err
			default:
				gone[it.EndpointID] = false
			}
		}
		j.Next++
		j.Processed++
		if gone[it.EndpointID] {
			j.Failed++
			continue
		}
		d, err := p.read(ctx, it)
		if errors.Is(err, errGone) {
			j.Failed++
			continue
		}
		if err != nil {
			return nil, false, err
		}
		if d.Tenant != j.Tenant {
			j.Failed++
			continue
		}
		// The same bytes and event id, as a new delivery: the attempt
		// count and schedule start over.
		out := record.Delivery{EndpointID: it.EndpointID, Tenant: d.Tenant, EventID: d.EventID, EventType: d.EventType,
			Body: d.Body, Trigger: j.Kind, Trace: d.Trace}
		recs = append(recs, out.Record(p.r.s.cfg.Topics.Deliveries))
		j.Sent++
	}
	return recs, j.Next >= int64(len(p.items)), nil
}

// read returns the delivery it names: its delivery record, or one built
// from its event's record as fanout builds it (the event's bytes, id,
// type and trace headers). A record that is not one is errGone, as a
// record past retention is: the item fails, the job goes on.
func (p *planSource) read(ctx context.Context, it Item) (record.Delivery, error) {
	if !it.Event {
		rec, err := p.reader.read(ctx, it.Partition, it.Offset)
		if err != nil {
			return record.Delivery{}, err
		}
		d, err := record.Parse(rec)
		if err != nil {
			return record.Delivery{}, fmt.Errorf("%w: %w", errGone, err)
		}
		return d, nil
	}
	rec, err := p.events.read(ctx, it.Partition, it.Offset)
	if err != nil {
		return record.Delivery{}, err
	}
	e, err := envelope.Decode(rec.Value, len(rec.Value))
	if err != nil {
		return record.Delivery{}, fmt.Errorf("%w: %w", errGone, err)
	}
	return record.Delivery{Tenant: string(record.Header(rec, record.HeaderTenant)), EventID: e.ID, EventType: e.Event,
		Body: rec.Value, Trace: traceHeaders(rec)}, nil
}
