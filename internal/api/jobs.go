package api

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/segmentio/encoding/json"

	"github.com/hookstream/hookstream/envelope"
	"github.com/hookstream/hookstream/internal/deliverylog"
	"github.com/hookstream/hookstream/internal/recovery"
	"github.com/hookstream/hookstream/schemas"
	"github.com/hookstream/hookstream/subscription"
)

// Jobs runs recovery jobs and test events (*recovery.Service).
type Jobs interface {
	Submit(ctx context.Context, j recovery.Job, plan []recovery.Item) (recovery.Job, bool, error)
	// Check returns the error Submit would return for j's idempotency
	// key, writing nothing.
	Check(j recovery.Job) error
	Get(tenant, id string) (recovery.Job, error)
	List(tenant, cursor string, limit int) ([]recovery.Job, string, error)
	Cancel(ctx context.Context, tenant, id string) (recovery.Job, error)
	DryRun(ctx context.Context, f recovery.Filter, sampleSize int) (int64, []envelope.Event, error)
	SendTest(ctx context.Context, tenant, endpointID string, e envelope.Event) error
}

// FailingLog finds what a recover job sends again (*deliverylog.Index).
type FailingLog = recovery.RecoverLog

// WithJobs serves the recovery routes (resend, recover, replay, test,
// jobs) from j, finding failed deliveries in l.
func WithJobs(j Jobs, l FailingLog) Option {
	return func(c *cfg) { c.jobs, c.failing = j, l }
}

// WithRecoverLimit lowers how many events one recover may go through
// (recovery.MaxRecoverEvents); a larger window is refused naming /since.
func WithRecoverLimit(n int) Option {
	return func(c *cfg) { c.recoverLimit = n }
}

// jobRoutes are the recovery routes.
func (s *Server) jobRoutes() map[string]http.HandlerFunc {
	return map[string]http.HandlerFunc{
		"POST /v1/events/{id}/resend":     s.resend,
		"POST /v1/endpoints/{id}/recover": s.recoverEndpoint,
		"POST /v1/endpoints/{id}/replay":  s.replay,
		"POST /v1/endpoints/{id}/test":    s.testEvent,
		"GET /v1/jobs":                    s.listJobs,
		"GET /v1/jobs/{id}":               s.getJob,
		"POST /v1/jobs/{id}/cancel":       s.cancelJob,
	}
}

// jobView is a job as the API shows it.
type jobView struct {
	ID         string     `json:"id"`
	Kind       string     `json:"kind"`
	EndpointID string     `json:"endpoint_id,omitempty"`
	EventID    string     `json:"event_id,omitempty"`
	State      string     `json:"state"`
	Total      int64      `json:"total"`
	Processed  int64      `json:"processed"`
	Sent       int64      `json:"sent"`
	Failed     int64      `json:"failed"`
	Rate       int        `json:"rate"`
	Since      *time.Time `json:"since,omitempty"`
	Until      *time.Time `json:"until,omitempty"`
	Types      []string   `json:"types,omitempty"`
	CreatedAt  time.Time  `json:"created_at"`
	StartedAt  *time.Time `json:"started_at"`
	FinishedAt *time.Time `json:"finished_at"`
	Error      string     `json:"error,omitempty"`
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = t.UTC()
	return &t
}

func jobOf(j recovery.Job) jobView {
	return jobView{ID: j.ID, Kind: j.Kind, EndpointID: j.EndpointID, EventID: j.EventID, State: j.State,
		Total: j.Total, Processed: j.Processed, Sent: j.Sent, Failed: j.Failed, Rate: j.Rate,
		Since: timePtr(j.Since), Until: timePtr(j.Until), Types: j.Types, CreatedAt: j.CreatedAt.UTC(),
		StartedAt: timePtr(j.StartedAt), FinishedAt: timePtr(j.FinishedAt), Error: j.Error}
}

// jobsRequest authenticates a recovery route, reads the body into fields
// (nil: no body; every body may be empty) and resolves the tenant.
func (s *Server) jobsRequest(w http.ResponseWriter, r *http.Request, fields map[string]any) (string, bool) {
	tok, ok := s.authenticate(w, r)
	if !ok {
		return "", false
	}
	if s.jobs == nil || s.endpoints == nil {
		writeError(w, http.StatusServiceUnavailable, CodeUnavailable, "", "recovery jobs are not configured on this server")
		return "", false
	}
	var tenant string
	if fields != nil {
		fields["tenant"] = &tenant
		if !s.decodeObject(w, r, true, fields) {
			return "", false
		}
	}
	return s.tenantFor(w, r, tok, tenant)
}

// jobParams are what resend, recover and replay bodies share: the pace
// and, for recover and replay, the window.
type jobParams struct {
	rate         int
	since, until time.Time
}

// jobRequest starts resend (windowed false), recover and replay: it adds
// "rate" (and "since" and "until") to fields, reads the body with
// jobsRequest and checks them.
func (s *Server) jobRequest(w http.ResponseWriter, r *http.Request, fields map[string]any, windowed bool) (string, jobParams, bool) {
	var p jobParams
	var since, until string
	fields["rate"] = &p.rate
	if windowed {
		fields["since"], fields["until"] = &since, &until
	}
	tenant, ok := s.jobsRequest(w, r, fields)
	if !ok || !checkRate(w, p.rate) {
		return "", p, false
	}
	if windowed {
		if p.since, p.until, ok = window(w, since, until); !ok {
			return "", p, false
		}
	}
	return tenant, p, true
}

// logConfigured answers 503 unless the delivery log a route reads is
// configured.
func logConfigured(w http.ResponseWriter, configured bool) bool {
	if !configured {
		writeError(w, http.StatusServiceUnavailable, CodeUnavailable, "", "the delivery log is not configured on this server")
	}
	return configured
}

// checkRate validates a job's "rate".
func checkRate(w http.ResponseWriter, rate int) bool {
	if rate < 0 || rate > recovery.MaxRate {
		writeError(w, http.StatusUnprocessableEntity, CodeInvalid, "/rate", "rate must be from 1 to %d deliveries per second", recovery.MaxRate)
		return false
	}
	return true
}

// window parses since (required) and until (optional) of a body.
func window(w http.ResponseWriter, since, until string) (time.Time, time.Time, bool) {
	if since == "" {
		writeError(w, http.StatusUnprocessableEntity, CodeInvalid, "/since", "since is required (RFC 3339)")
		return time.Time{}, time.Time{}, false
	}
	from, err := time.Parse(time.RFC3339, since)
	if err != nil {
		writeError(w, http.StatusUnprocessableEntity, CodeInvalid, "/since", "since must be an RFC 3339 time")
		return time.Time{}, time.Time{}, false
	}
	var to time.Time
	if until != "" {
		if to, err = time.Parse(time.RFC3339, until); err != nil || !to.After(from) {
			writeError(w, http.StatusUnprocessableEntity, CodeInvalid, "/until", "until must be an RFC 3339 time after since")
			return time.Time{}, time.Time{}, false
		}
	}
	return from, to, true
}

// CodeIdempotency answers an Idempotency-Key used again with other
// parameters (Stripe's code).
const CodeIdempotency = "idempotency_error"

// submit starts j and answers 202 with it; a request repeated with the
// same Idempotency-Key and body fields gets the job it started.
func (s *Server) submit(w http.ResponseWriter, r *http.Request, fields map[string]any, j recovery.Job, plan []recovery.Item) {
	if j, ok := s.keyedJob(w, r, fields, j); ok {
		s.submitJob(w, r, j, plan)
	}
}

// keyedJob adds the request's idempotency key and fields to j.
func (s *Server) keyedJob(w http.ResponseWriter, r *http.Request, fields map[string]any, j recovery.Job) (recovery.Job, bool) {
	j.IdempotencyKey = r.Header.Get("Idempotency-Key")
	if len(j.IdempotencyKey) > 255 {
		writeError(w, http.StatusBadRequest, CodeInvalid, "", "Idempotency-Key is longer than 255 characters")
		return j, false
	}
	j.Request = map[string]json.RawMessage{}
	for name, v := range fields {
		if name == "tenant" {
			continue // the key is the tenant's already
		}
		b, err := json.Marshal(v)
		if err != nil {
			s.jobError(w, r, err)
			return j, false
		}
		j.Request[name] = b
	}
	return j, true
}

// submitJob submits j (from keyedJob) and answers with it.
func (s *Server) submitJob(w http.ResponseWriter, r *http.Request, j recovery.Job, plan []recovery.Item) {
	ctx, cancel := s.storeContext(r)
	defer cancel()
	out, existing, err := s.jobs.Submit(ctx, j, plan)
	if err != nil {
		s.jobError(w, r, err)
		return
	}
	if existing {
		w.Header().Set("Idempotent-Replayed", "true")
	}
	writeJSON(w, http.StatusAccepted, map[string]jobView{"job": jobOf(out)})
}

func (s *Server) jobError(w http.ResponseWriter, r *http.Request, err error) {
	var reused *recovery.KeyReusedError
	var tooLarge *recovery.WindowTooLargeError
	switch {
	case errors.As(err, &tooLarge):
		writeError(w, http.StatusUnprocessableEntity, CodeInvalid, "/since", "%v", tooLarge)
	case errors.As(err, &reused):
		writeError(w, http.StatusBadRequest, CodeIdempotency, reused.Field,
			"Keys for idempotent requests can only be used with the same parameters they were first used with; this Idempotency-Key started %s", reused.First)
	case errors.Is(err, recovery.ErrBadCursor):
		writeError(w, http.StatusBadRequest, CodeInvalid, "/cursor", "the cursor names no job of yours (finished jobs are removed after their retention): list again from the start")
	case errors.Is(err, recovery.ErrNotFound):
		writeError(w, http.StatusNotFound, CodeNotFound, "", "no job %q", r.PathValue("id"))
	case errors.Is(err, recovery.ErrFinished):
		writeError(w, http.StatusConflict, CodeConflict, "", "the job already ended")
	case errors.Is(err, deliverylog.ErrNotFound):
		writeError(w, http.StatusNotFound, CodeNotFound, "", "not found: %s", r.URL.Path)
	case errors.Is(err, subscription.ErrNotFound), errors.Is(err, subscription.ErrUnavailable):
		s.endpointError(w, r, err)
	case unavailable(err), errors.Is(err, context.Canceled):
		s.log.Warn("recovery request failed: dependency unavailable", "path", r.URL.Path, "err", err)
		writeError(w, http.StatusServiceUnavailable, CodeUnavailable, "", "Kafka or Redis is unavailable; retry later")
	default:
		s.log.Error("recovery request failed", "path", r.URL.Path, "err", err)
		writeError(w, http.StatusInternalServerError, codeInternal, "", "internal error")
	}
}

func (s *Server) resend(w http.ResponseWriter, r *http.Request) {
	var endpoints []string
	fields := map[string]any{"endpoints": &endpoints}
	tenant, p, ok := s.jobRequest(w, r, fields, false)
	if !ok || !logConfigured(w, s.deliveryLog != nil) {
		return
	}
	ctx, cancel := s.storeContext(r)
	defer cancel()
	ev, err := s.deliveryLog.Event(ctx, tenant, r.PathValue("id"))
	if err != nil {
		s.jobError(w, r, err)
		return
	}
	// The event's bytes: its record in the events topic, from which each
	// delivery is built as fanout built it.
	src := ev.Source
	if src.Topic == "" {
		writeError(w, http.StatusNotFound, CodeNotFound, "", "the event's bytes are no longer known to the delivery log")
		return
	}
	targets := endpoints
	if targets == nil {
		for _, d := range ev.Deliveries {
			targets = append(targets, d.EndpointID)
		}
	}
	if len(targets) == 0 {
		writeError(w, http.StatusUnprocessableEntity, CodeInvalid, "/endpoints", "name at least one endpoint")
		return
	}
	var plan []recovery.Item
	seen := map[string]bool{}
	for i, id := range targets {
		if seen[id] {
			continue
		}
		seen[id] = true
		if endpoints != nil {
			if _, err := s.endpoints.Get(ctx, tenant, id); err != nil {
				if errors.Is(err, subscription.ErrNotFound) {
					writeError(w, http.StatusUnprocessableEntity, CodeInvalid, "/endpoints/"+strconv.Itoa(i), "no endpoint %q", id)
					return
				}
				s.endpointError(w, r, err)
				return
			}
		}
		plan = append(plan, recovery.Item{EndpointID: id, Partition: src.Partition, Offset: src.Offset, Event: true})
	}
	s.submit(w, r, fields, recovery.Job{Tenant: tenant, Kind: recovery.KindResend, EventID: ev.ID, Rate: p.rate}, plan)
}

func (s *Server) recoverEndpoint(w http.ResponseWriter, r *http.Request) {
	var enable bool
	fields := map[string]any{"enable": &enable}
	tenant, p, ok := s.jobRequest(w, r, fields, true)
	if !ok || !logConfigured(w, s.failing != nil) {
		return
	}
	ctx, cancel := s.storeContext(r)
	defer cancel()
	ep, ok := s.pathEndpoint(ctx, w, r, tenant)
	if !ok {
		return
	}
	id := ep.ID
	if ep.Disabled && !enable {
		writeError(w, http.StatusConflict, CodeConflict, "/enable", "the endpoint is disabled (%s): send \"enable\": true to enable it and recover", ep.DisabledReason)
		return
	}
	plan, err := recovery.PlanRecover(ctx, s.failing, tenant, id, p.since, p.until, s.recoverLimit)
	if err != nil {
		s.jobError(w, r, err)
		return
	}
	j, ok := s.keyedJob(w, r, fields, recovery.Job{Tenant: tenant, Kind: recovery.KindRecover, EndpointID: id, Since: p.since, Until: p.until, Rate: p.rate})
	if !ok {
		return
	}
	if ep.Disabled {
		// Enabled only for a job that will be accepted: a refused request
		// (window too large, key reused) leaves the endpoint as it was.
		// The job is submitted after, so its deliveries find it enabled.
		if err := s.jobs.Check(j); err != nil {
			s.jobError(w, r, err)
			return
		}
		enabled := false
		if _, err := s.endpoints.Update(ctx, tenant, id, subscription.Patch{Disabled: &enabled}); err != nil {
			s.endpointError(w, r, err)
			return
		}
	}
	s.submitJob(w, r, j, plan)
}

// dryRunTimeout bounds a dry run's read of the events topic.
const dryRunTimeout = time.Minute

func (s *Server) replay(w http.ResponseWriter, r *http.Request) {
	var types []string
	var dryRun bool
	fields := map[string]any{"types": &types, "dry_run": &dryRun}
	tenant, p, ok := s.jobRequest(w, r, fields, true)
	if !ok {
		return
	}
	for i, t := range types {
		if s.catalog == nil || !s.catalog.Has(t) {
			writeError(w, http.StatusUnprocessableEntity, CodeUnknownType, "/types/"+strconv.Itoa(i), "unknown event type; GET /v1/event-types lists them")
			return
		}
	}
	ctx, cancel := s.storeContext(r)
	defer cancel()
	ep, ok := s.pathEndpoint(ctx, w, r, tenant)
	if !ok {
		return
	}
	if ep.Disabled && !dryRun {
		// The deliverer would dead-letter every record of it.
		writeError(w, http.StatusConflict, CodeConflict, "", "the endpoint is disabled (%s): enable it before replaying to it", ep.DisabledReason)
		return
	}
	if dryRun {
		dctx, cancel := context.WithTimeout(r.Context(), dryRunTimeout)
		defer cancel()
		n, sample, err := s.jobs.DryRun(dctx, recovery.Filter{Tenant: tenant, Since: p.since, Until: p.until, Types: types, Endpoint: ep}, 10)
		if err != nil {
			s.jobError(w, r, err)
			return
		}
		type item struct {
			ID        string `json:"id"`
			Event     string `json:"event"`
			Timestamp string `json:"timestamp"`
		}
		out := struct {
			Count  int64  `json:"count"`
			Sample []item `json:"sample"`
		}{Count: n, Sample: []item{}}
		for _, e := range sample {
			out.Sample = append(out.Sample, item{e.ID, e.Event, e.Timestamp})
		}
		writeJSON(w, http.StatusOK, &out)
		return
	}
	s.submit(w, r, fields, recovery.Job{Tenant: tenant, Kind: recovery.KindReplay, EndpointID: ep.ID, Since: p.since, Until: p.until,
		Types: types, Rate: p.rate}, nil)
}

// maxTestWait bounds ?wait= of a test event.
const maxTestWait = 30 * time.Second

func (s *Server) testEvent(w http.ResponseWriter, r *http.Request) {
	var body struct {
		event string
		data  json.RawMessage
	}
	tenant, ok := s.jobsRequest(w, r, map[string]any{"event": &body.event, "data": &body.data})
	if !ok {
		return
	}
	var wait time.Duration
	if v := r.URL.Query().Get("wait"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 || d > maxTestWait {
			writeError(w, http.StatusBadRequest, CodeInvalid, "/wait", "wait must be a duration up to %s, such as 10s", maxTestWait)
			return
		}
		wait = d
	}
	ctx, cancel := s.storeContext(r)
	defer cancel()
	ep, ok := s.pathEndpoint(ctx, w, r, tenant)
	if !ok {
		return
	}
	typ, data, ok := s.testData(w, ep, body.event, body.data)
	if !ok {
		return
	}
	e := envelope.New(typ, data)
	if err := s.jobs.SendTest(ctx, tenant, ep.ID, e); err != nil {
		s.jobError(w, r, err)
		return
	}
	out := struct {
		EventID string       `json:"event_id"`
		Attempt *attemptView `json:"attempt,omitempty"`
	}{EventID: e.ID}
	if wait > 0 && s.deliveryLog != nil {
		wctx, cancel := context.WithTimeout(r.Context(), wait)
		defer cancel()
		for out.Attempt == nil && wctx.Err() == nil {
			pg, err := s.deliveryLog.EventAttempts(wctx, tenant, e.ID, deliverylog.Query{Limit: 1})
			if err == nil && len(pg.Data) > 0 {
				a := attemptOf(pg.Data[len(pg.Data)-1])
				out.Attempt = &a
				break
			}
			select {
			case <-wctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
		}
		if out.Attempt != nil {
			writeJSON(w, http.StatusOK, &out)
			return
		}
	}
	writeJSON(w, http.StatusAccepted, &out)
}

// testData picks a test event's type and data: the type given, else the
// first catalog type the endpoint subscribes to; the data given
// (validated), else the type's catalog example.
func (s *Server) testData(w http.ResponseWriter, ep *subscription.Endpoint, typ string, data json.RawMessage) (string, json.RawMessage, bool) {
	if s.catalog == nil {
		writeError(w, http.StatusServiceUnavailable, CodeUnavailable, "", "the event catalog is not configured on this server")
		return "", nil, false
	}
	var example json.RawMessage
	for _, t := range s.catalog.Types() {
		if typ == "" && ep.Matches(t.Name) && !schemas.Operational(t.Name) || typ != "" && t.Name == typ {
			typ, example = t.Name, t.Example
			break
		}
	}
	switch {
	case typ == "":
		writeError(w, http.StatusUnprocessableEntity, CodeInvalid, "/event", "the endpoint subscribes to no catalog type: name one")
		return "", nil, false
	case example == nil:
		writeError(w, http.StatusUnprocessableEntity, CodeUnknownType, "/event", "unknown event type; GET /v1/event-types lists them")
		return "", nil, false
	case data == nil:
		return typ, example, true
	}
	if err := s.catalog.Validate(typ, data); err != nil {
		e := publishError(err, false)
		writeError(w, e.status, e.code, e.field, "%s", e.text)
		return "", nil, false
	}
	return typ, data, true
}

func (s *Server) listJobs(w http.ResponseWriter, r *http.Request) {
	tenant, ok := s.jobsRequest(w, r, nil)
	if !ok {
		return
	}
	limit := DefaultPageSize
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > MaxPageSize {
			writeError(w, http.StatusBadRequest, CodeInvalid, "/limit", "limit must be an integer from 1 to %d", MaxPageSize)
			return
		}
		limit = n
	}
	jobs, next, err := s.jobs.List(tenant, r.URL.Query().Get("cursor"), limit)
	if err != nil {
		s.jobError(w, r, err)
		return
	}
	out := struct {
		Data []jobView `json:"data"`
		Next *string   `json:"next"`
	}{Data: make([]jobView, len(jobs))}
	for i, j := range jobs {
		out.Data[i] = jobOf(j)
	}
	if next != "" {
		out.Next = &next
	}
	writeJSON(w, http.StatusOK, &out)
}

func (s *Server) getJob(w http.ResponseWriter, r *http.Request) {
	tenant, ok := s.jobsRequest(w, r, nil)
	if !ok {
		return
	}
	j, err := s.jobs.Get(tenant, r.PathValue("id"))
	s.answerJob(w, r, http.StatusOK, j, err)
}

func (s *Server) cancelJob(w http.ResponseWriter, r *http.Request) {
	tenant, ok := s.jobsRequest(w, r, nil)
	if !ok {
		return
	}
	ctx, cancel := s.storeContext(r)
	defer cancel()
	// The runner ends it within a step; until then it shows as it was.
	j, err := s.jobs.Cancel(ctx, tenant, r.PathValue("id"))
	s.answerJob(w, r, http.StatusAccepted, j, err)
}

// answerJob answers with the job, or with why there is none.
func (s *Server) answerJob(w http.ResponseWriter, r *http.Request, status int, j recovery.Job, err error) {
	if err != nil {
		s.jobError(w, r, err)
		return
	}
	writeJSON(w, status, jobOf(j))
}
