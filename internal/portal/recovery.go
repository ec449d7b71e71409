package portal

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/hookstream/hookstream/envelope"
	"github.com/hookstream/hookstream/internal/recovery"
	"github.com/hookstream/hookstream/schemas"
	"github.com/hookstream/hookstream/subscription"
)

// Jobs runs recovery jobs and test events; *recovery.Service is one.
type Jobs interface {
	Submit(ctx context.Context, j recovery.Job, plan []recovery.Item) (recovery.Job, bool, error)
	Get(tenant, id string) (recovery.Job, error)
	SendTest(ctx context.Context, tenant, endpointID string, e envelope.Event) error
}

// Failing finds what a recover job sends again; *deliverylog.Index is one.
type Failing = recovery.RecoverLog

func (p *Portal) jobsReady(w http.ResponseWriter, r *http.Request, rq *request) bool {
	if p.Jobs == nil || p.Log == nil || p.Failing == nil {
		p.fail(w, r, rq, http.StatusServiceUnavailable, "Recovery is not available on this server.")
		return false
	}
	return true
}

// submit starts j and shows its progress page.
func (p *Portal) submit(w http.ResponseWriter, r *http.Request, rq *request, j recovery.Job, plan []recovery.Item) {
	ctx, cancel := p.ctx(r)
	defer cancel()
	out, _, err := p.Jobs.Submit(ctx, j, plan)
	if err != nil {
		p.jobError(w, r, rq, err)
		return
	}
	http.Redirect(w, r, "/portal/jobs/"+url.PathEscape(out.ID), http.StatusSeeOther)
}

func (p *Portal) jobError(w http.ResponseWriter, r *http.Request, rq *request, err error) {
	switch {
	case errors.Is(err, recovery.ErrNotFound):
		p.fail(w, r, rq, http.StatusNotFound, "There is no such job.")
	default:
		p.logError(w, r, rq, err)
	}
}

// resend sends an event again, with the same id and bytes: to one
// endpoint (the form's endpoint) or to every endpoint it matched.
func (p *Portal) resend(w http.ResponseWriter, r *http.Request, rq *request) {
	if !p.jobsReady(w, r, rq) {
		return
	}
	ctx, cancel := p.ctx(r)
	defer cancel()
	ev, err := p.Log.Event(ctx, rq.sess.Tenant, r.PathValue("id"))
	if err != nil {
		p.logError(w, r, rq, err)
		return
	}
	only := r.PostFormValue("endpoint")
	var plan []recovery.Item
	for _, d := range ev.Deliveries {
		if ev.Source.Topic == "" || only != "" && d.EndpointID != only {
			continue
		}
		plan = append(plan, recovery.Item{EndpointID: d.EndpointID, Partition: ev.Source.Partition, Offset: ev.Source.Offset, Event: true})
	}
	if len(plan) == 0 {
		p.fail(w, r, rq, http.StatusUnprocessableEntity, "This event's bytes are no longer known to the delivery log, or it went to no endpoint.")
		return
	}
	p.submit(w, r, rq, recovery.Job{Tenant: rq.sess.Tenant, Kind: recovery.KindResend, EventID: ev.ID}, plan)
}

// window reads the since and until fields of a recovery form.
func (p *Portal) window(w http.ResponseWriter, r *http.Request, rq *request) (time.Time, time.Time, bool) {
	since, ok1 := parseTime(r.PostFormValue("since"))
	until, ok2 := parseTime(r.PostFormValue("until"))
	switch {
	case !ok1 || !ok2 || since.IsZero():
		p.fail(w, r, rq, http.StatusUnprocessableEntity, "Give a start time such as 2026-03-04T12:00 (UTC).")
		return since, until, false
	case !until.IsZero() && !until.After(since):
		p.fail(w, r, rq, http.StatusUnprocessableEntity, "The end time must be after the start time.")
		return since, until, false
	}
	return since, until, true
}

// windowJob reads what a recover or replay form names: its window and
// the tenant's {id} endpoint.
func (p *Portal) windowJob(ctx context.Context, w http.ResponseWriter, r *http.Request, rq *request) (*subscription.Endpoint, time.Time, time.Time, bool) {
	if !p.jobsReady(w, r, rq) {
		return nil, time.Time{}, time.Time{}, false
	}
	since, until, ok := p.window(w, r, rq)
	if !ok {
		return nil, time.Time{}, time.Time{}, false
	}
	e, ok := p.pathEndpoint(ctx, w, r, rq)
	return e, since, until, ok
}

// recoverEndpoint sends again every delivery to the endpoint since a time
// that ended dead or is still failing.
func (p *Portal) recoverEndpoint(w http.ResponseWriter, r *http.Request, rq *request) {
	ctx, cancel := p.ctx(r)
	defer cancel()
	e, since, until, ok := p.windowJob(ctx, w, r, rq)
	if !ok {
		return
	}
	if e.Disabled && r.PostFormValue("enable") != "yes" {
		p.fail(w, r, rq, http.StatusConflict, "This endpoint is disabled. Tick \"Enable the endpoint\" to enable it and recover.")
		return
	}
	plan, err := recovery.PlanRecover(ctx, p.Failing, rq.sess.Tenant, e.ID, since, until, p.RecoverLimit)
	var tooLarge *recovery.WindowTooLargeError
	switch {
	case errors.As(err, &tooLarge):
		p.fail(w, r, rq, http.StatusUnprocessableEntity, fmt.Sprintf("More than %d events were sent to this endpoint in this window; one recovery takes at most %d. Recover from %s first, then the time before it.",
			tooLarge.Limit, tooLarge.Limit, tooLarge.Since.UTC().Format("2006-01-02T15:04:05")))
		return
	case err != nil:
		p.logError(w, r, rq, err)
		return
	}
	if e.Disabled {
		// Enabled once the recovery is planned: a refused one changes
		// nothing. Before the job, so its deliveries find it enabled.
		enabled := false
		if _, err := p.Endpoints.Update(ctx, rq.sess.Tenant, e.ID, subscription.Patch{Disabled: &enabled}); accepted(err) != nil {
			p.storeError(w, r, rq, err)
			return
		}
	}
	p.submit(w, r, rq, recovery.Job{Tenant: rq.sess.Tenant, Kind: recovery.KindRecover, EndpointID: e.ID, Since: since, Until: until}, plan)
}

// replay sends the endpoint every event of the window that its filter
// matches, read back from the events topic.
func (p *Portal) replay(w http.ResponseWriter, r *http.Request, rq *request) {
	ctx, cancel := p.ctx(r)
	defer cancel()
	e, since, until, ok := p.windowJob(ctx, w, r, rq)
	if !ok {
		return
	}
	p.submit(w, r, rq, recovery.Job{Tenant: rq.sess.Tenant, Kind: recovery.KindReplay, EndpointID: e.ID, Since: since, Until: until}, nil)
}

// testEvent sends the endpoint a catalog example of the chosen type through
// the real pipeline, to this endpoint only.
func (p *Portal) testEvent(w http.ResponseWriter, r *http.Request, rq *request) {
	if !p.jobsReady(w, r, rq) {
		return
	}
	ctx, cancel := p.ctx(r)
	defer cancel()
	e, ok := p.pathEndpoint(ctx, w, r, rq)
	if !ok {
		return
	}
	typ := r.PostFormValue("event")
	var example []byte
	for _, t := range p.Catalog.Types() {
		if t.Name == typ && e.Matches(t.Name) && !schemas.Operational(t.Name) {
			example = t.Example
		}
	}
	if example == nil {
		p.fail(w, r, rq, http.StatusUnprocessableEntity, "Choose an event type this endpoint subscribes to.")
		return
	}
	ev := envelope.New(typ, example)
	if err := p.Jobs.SendTest(ctx, rq.sess.Tenant, e.ID, ev); err != nil {
		p.logError(w, r, rq, err)
		return
	}
	http.Redirect(w, r, "/portal/endpoints/"+e.ID+"?done=test#log", http.StatusSeeOther)
}

func (p *Portal) jobPage(w http.ResponseWriter, r *http.Request, rq *request) {
	if !p.jobsReady(w, r, rq) {
		return
	}
	j, err := p.Jobs.Get(rq.sess.Tenant, r.PathValue("id"))
	if err != nil {
		p.jobError(w, r, rq, err)
		return
	}
	running := j.State == recovery.StateQueued || j.State == recovery.StateRunning
	p.render(w, r, http.StatusOK, "job", rq, "Job "+j.ID, map[string]any{"Job": j, "Running": running, "Self": r.URL.RequestURI()})
}
