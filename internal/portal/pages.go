package portal

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/segmentio/encoding/json"

	"github.com/hookstream/hookstream/internal/api"
	"github.com/hookstream/hookstream/internal/deliverylog"
	"github.com/hookstream/hookstream/internal/docs"
	"github.com/hookstream/hookstream/schemas"
	"github.com/hookstream/hookstream/subscription"
)

// maxEndpoints is how many endpoints the list shows; the API's quota
// default is 1000, and a customer with more uses the API.
const maxEndpoints = 250

// healthWindow is the period an endpoint's health is computed over.
const healthWindow = 24 * time.Hour

// health is an endpoint's state from the delivery log's stats over
// healthWindow, with its last failed attempt.
type health struct {
	Known       bool // the log answered
	Stats       api.StatsView
	Rate        float64 // Stats.SuccessRate, when it is not null
	HasRate     bool
	LastFailure *deliverylog.Entry
}

func (p *Portal) healthOf(ctx context.Context, tenant, id string) health {
	if p.API == nil {
		return health{}
	}
	st, err := p.API.EndpointStats(ctx, tenant, id, healthWindow)
	if err != nil {
		return health{}
	}
	h := health{Known: true, Stats: st}
	if st.SuccessRate != nil {
		h.Rate, h.HasRate = *st.SuccessRate, true
	}
	if p.Log != nil && st.Failed > 0 {
		pg, err := p.Log.EndpointAttempts(ctx, tenant, id, deliverylog.Query{Limit: 1, Filter: deliverylog.Filter{Outcome: "failed"}})
		if err == nil && len(pg.Data) > 0 {
			h.LastFailure = &pg.Data[0]
		}
	}
	return h
}

func (p *Portal) ctx(r *http.Request) (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.Context(), p.Timeout)
}

type endpointRow struct {
	*subscription.Endpoint
	Health health
}

func (p *Portal) endpointsPage(w http.ResponseWriter, r *http.Request, rq *request) {
	ctx, cancel := p.ctx(r)
	defer cancel()
	eps, _, err := p.Endpoints.List(ctx, rq.sess.Tenant, "", maxEndpoints)
	if err != nil {
		p.storeError(w, r, rq, err)
		return
	}
	rows := make([]endpointRow, len(eps))
	for i, e := range eps {
		rows[i] = endpointRow{Endpoint: e, Health: p.healthOf(ctx, rq.sess.Tenant, e.ID)}
	}
	p.render(w, r, http.StatusOK, "endpoints", rq, "Endpoints", map[string]any{"Endpoints": rows})
}

// attemptFilter is the delivery log's filter form.
type attemptFilter struct {
	Outcome, Type, EventID, Since, Until, Cursor string
}

// timeLayout is what a datetime-local input sends; the portal reads it
// as UTC, and says so next to the field.
const timeLayout = "2006-01-02T15:04"

func parseTime(s string) (time.Time, bool) {
	if s == "" {
		return time.Time{}, true
	}
	for _, l := range []string{timeLayout, time.RFC3339, timeLayout + ":05"} {
		if t, err := time.Parse(l, s); err == nil {
			return t.UTC(), true
		}
	}
	return time.Time{}, false
}

func (p *Portal) endpointPage(w http.ResponseWriter, r *http.Request, rq *request) {
	p.showEndpoint(w, r, rq, http.StatusOK, nil)
}

// showEndpoint renders an endpoint's page: settings, health, secret,
// verification, and its delivery log with filters. extra adds to the
// page's data (a revealed secret).
func (p *Portal) showEndpoint(w http.ResponseWriter, r *http.Request, rq *request, status int, extra map[string]any) {
	ctx, cancel := p.ctx(r)
	defer cancel()
	e, err := p.Endpoints.Get(ctx, rq.sess.Tenant, r.PathValue("id"))
	if err != nil {
		p.storeError(w, r, rq, err)
		return
	}
	v := r.URL.Query()
	f := attemptFilter{Outcome: v.Get("outcome"), Type: v.Get("type"), EventID: strings.TrimSpace(v.Get("event_id")),
		Since: v.Get("since"), Until: v.Get("until"), Cursor: v.Get("cursor")}
	q := deliverylog.Query{Limit: 25, Cursor: f.Cursor, Filter: deliverylog.Filter{Outcome: f.Outcome, Type: f.Type, EventID: f.EventID}}
	var filterErr string
	var ok1, ok2 bool
	q.Since, ok1 = parseTime(f.Since)
	q.Until, ok2 = parseTime(f.Until)
	if !ok1 || !ok2 {
		filterErr = "Times are dates and times such as 2026-03-04T12:00 (UTC)."
	}
	data := map[string]any{
		"Endpoint": e, "Health": p.healthOf(ctx, rq.sess.Tenant, e.ID), "Filter": f, "FilterError": filterErr,
		"Types": p.Catalog.Types(), "Scheme": p.schemeName(e.Signature),
		"Graces": graces, "Headers": subscription.MaskedHeaders(e.Headers), "Self": endpointURL(e.ID, r),
		"TestTypes": testTypes(p.Catalog, e), "DefaultSince": time.Now().UTC().Add(-24 * time.Hour).Format(timeLayout),
		"Recovery": p.Jobs != nil,
	}
	for k, x := range extra {
		data[k] = x
	}
	if p.Log != nil && filterErr == "" {
		pg, err := p.Log.EndpointAttempts(ctx, rq.sess.Tenant, e.ID, q)
		switch {
		case err == nil:
			data["Attempts"] = pg.Data
			data["Window"] = pg
			if pg.Next != "" {
				data["Older"] = pageLink(r, pg.Next)
			}
			if pg.Prev != "" && f.Cursor != "" {
				data["Newer"] = pageLink(r, pg.Prev)
			}
		case errors.Is(err, deliverylog.ErrBadCursor), errors.Is(err, deliverylog.ErrNotFound):
			data["FilterError"] = "That page of the log is not available; start again from the newest."
		default:
			p.Logger.Warn("portal: delivery log", "err", err)
			data["FilterError"] = "The delivery log is unavailable right now."
		}
	}
	p.render(w, r, status, "endpoint", rq, e.URL, data)
}

// testTypes are the catalog types a test event to e may have: those it
// subscribes to, but for the operational ones Hookstream emits itself.
func testTypes(cat *schemas.Catalog, e *subscription.Endpoint) []string {
	var out []string
	for _, t := range cat.Types() {
		if e.Matches(t.Name) && !schemas.Operational(t.Name) {
			out = append(out, t.Name)
		}
	}
	return out
}

// endpointURL is the endpoint page with the request's filters: what the
// log refreshes from, also after an action answered on another path.
func endpointURL(id string, r *http.Request) string {
	u := "/portal/endpoints/" + url.PathEscape(id)
	if r.Method == http.MethodGet && r.URL.RawQuery != "" {
		u += "?" + r.URL.RawQuery
	}
	return u
}

// pageLink is the current URL with another cursor.
func pageLink(r *http.Request, cursor string) string {
	v := r.URL.Query()
	v.Set("cursor", cursor)
	return r.URL.Path + "?" + v.Encode() + "#log"
}

// graces are the rotation grace periods the form offers.
var graces = []struct{ Value, Label string }{
	{"0s", "none: the old secret stops now"},
	{"1h", "1 hour"},
	{"24h", "24 hours"},
	{"168h", "7 days"},
}

func (p *Portal) schemeName(s string) string {
	if s == "seed" {
		return "X-" + p.SignatureBrand + "-Signature (HMAC-SHA256 of the body, hex)"
	}
	return "Standard Webhooks (webhook-signature)"
}

func (p *Portal) newEndpointPage(w http.ResponseWriter, r *http.Request, rq *request) {
	p.renderForm(w, r, rq, http.StatusOK, nil, endpointForm{Signature: "standard", Ordering: "strict", Events: []string{"*"}}, nil)
}

func (p *Portal) editEndpointPage(w http.ResponseWriter, r *http.Request, rq *request) {
	ctx, cancel := p.ctx(r)
	defer cancel()
	if e, ok := p.pathEndpoint(ctx, w, r, rq); ok {
		p.renderForm(w, r, rq, http.StatusOK, e, formOf(e), nil)
	}
}

func (p *Portal) createEndpoint(w http.ResponseWriter, r *http.Request, rq *request) {
	f, in, errs := parseForm(r)
	if len(errs) > 0 {
		p.renderForm(w, r, rq, http.StatusUnprocessableEntity, nil, f, errs)
		return
	}
	ctx, cancel := p.ctx(r)
	defer cancel()
	e, err := p.Endpoints.Create(ctx, rq.sess.Tenant, in)
	p.saved(w, r, rq, nil, f, e, accepted(err), "created")
}

// accepted is err, or nil when the write is recorded and only the cache
// lags (subscription.ErrNotCached): saying it failed would have the user
// create the endpoint again.
func accepted(err error) error {
	if errors.Is(err, subscription.ErrNotCached) {
		return nil
	}
	return err
}

func (p *Portal) updateEndpoint(w http.ResponseWriter, r *http.Request, rq *request) {
	ctx, cancel := p.ctx(r)
	defer cancel()
	e, ok := p.pathEndpoint(ctx, w, r, rq)
	if !ok {
		return
	}
	f, in, errs := parseForm(r)
	if len(errs) > 0 {
		p.renderForm(w, r, rq, http.StatusUnprocessableEntity, e, f, errs)
		return
	}
	patch := subscription.Patch{URL: &in.URL, Events: in.Events, Description: &in.Description, Signature: &in.Signature,
		Ordering: &in.Ordering, RateLimit: &in.RateLimit, Headers: in.Headers}
	if patch.Headers == nil {
		patch.Headers = map[string]string{} // none left in the form: remove them all
	}
	_, err := p.Endpoints.Update(ctx, rq.sess.Tenant, e.ID, patch)
	p.saved(w, r, rq, e, f, e, accepted(err), "updated")
}

func (p *Portal) setDisabled(disabled bool) func(http.ResponseWriter, *http.Request, *request) {
	return func(w http.ResponseWriter, r *http.Request, rq *request) {
		ctx, cancel := p.ctx(r)
		defer cancel()
		e, err := p.Endpoints.Update(ctx, rq.sess.Tenant, r.PathValue("id"), subscription.Patch{Disabled: &disabled})
		if err = accepted(err); err != nil {
			p.storeError(w, r, rq, err)
			return
		}
		done := "enabled"
		if disabled {
			done = "disabled"
		}
		http.Redirect(w, r, "/portal/endpoints/"+e.ID+"?done="+done, http.StatusSeeOther)
	}
}

func (p *Portal) deleteEndpoint(w http.ResponseWriter, r *http.Request, rq *request) {
	if r.PostFormValue("confirm") != "yes" {
		p.fail(w, r, rq, http.StatusUnprocessableEntity, "Tick the box to confirm the deletion.")
		return
	}
	ctx, cancel := p.ctx(r)
	defer cancel()
	if err := accepted(p.Endpoints.Delete(ctx, rq.sess.Tenant, r.PathValue("id"))); err != nil {
		p.storeError(w, r, rq, err)
		return
	}
	http.Redirect(w, r, "/portal/?done=deleted", http.StatusSeeOther)
}

// revealSecret shows the newest signing secret on the endpoint's page. It
// is a POST, so the secret is never in a URL, a history entry or a cache.
func (p *Portal) revealSecret(w http.ResponseWriter, r *http.Request, rq *request) {
	ctx, cancel := p.ctx(r)
	defer cancel()
	if e, ok := p.pathEndpoint(ctx, w, r, rq); ok {
		p.showEndpoint(w, r, rq, http.StatusOK, map[string]any{"Secret": e.Secrets[0].Value})
	}
}

func (p *Portal) rotateSecret(w http.ResponseWriter, r *http.Request, rq *request) {
	grace, err := time.ParseDuration(r.PostFormValue("grace"))
	if err != nil || grace < 0 || !slices.ContainsFunc(graces, func(g struct{ Value, Label string }) bool { return g.Value == r.PostFormValue("grace") }) {
		p.fail(w, r, rq, http.StatusUnprocessableEntity, "Choose a grace period from the list.")
		return
	}
	ctx, cancel := p.ctx(r)
	defer cancel()
	e, err := p.Endpoints.RotateSecret(ctx, rq.sess.Tenant, r.PathValue("id"), grace)
	if err = accepted(err); err != nil {
		p.storeError(w, r, rq, err)
		return
	}
	extra := map[string]any{"Rotated": true}
	if rq.sess.Can(ViewSecrets) {
		extra["Secret"] = e.Secrets[0].Value
	}
	p.showEndpoint(w, r, rq, http.StatusOK, extra)
}

func (p *Portal) verifyPage(w http.ResponseWriter, r *http.Request, rq *request) {
	ctx, cancel := p.ctx(r)
	defer cancel()
	e, ok := p.pathEndpoint(ctx, w, r, rq)
	if !ok {
		return
	}
	snippets, err := docs.Snippets()
	if err != nil {
		p.storeError(w, r, rq, err)
		return
	}
	p.render(w, r, http.StatusOK, "verify", rq, "Verify signatures", map[string]any{
		"Endpoint": e, "Snippets": snippets, "Brand": p.SignatureBrand, "Prefix": "X-" + p.SignatureBrand + "-",
	})
}

// field is one top-level field of an event type's data, for the catalog.
type field struct {
	Name, Type, Description string
	Required                bool
}

type catalogType struct {
	Name, Description, Example string
	Fields                     []field
}

func (p *Portal) catalogPage(w http.ResponseWriter, r *http.Request, rq *request) {
	var fams []struct {
		Name  string
		Types []catalogType
	}
	for _, t := range p.Catalog.Types() {
		fam, _, _ := strings.Cut(t.Name, ".")
		if len(fams) == 0 || fams[len(fams)-1].Name != fam {
			fams = append(fams, struct {
				Name  string
				Types []catalogType
			}{Name: fam})
		}
		var ex bytes.Buffer
		if json.Indent(&ex, t.Envelope, "", "  ") != nil {
			ex.Reset()
			ex.Write(t.Envelope)
		}
		f := &fams[len(fams)-1]
		f.Types = append(f.Types, catalogType{Name: t.Name, Description: t.Description, Example: ex.String(), Fields: fieldsOf(t.Schema)})
	}
	p.render(w, r, http.StatusOK, "catalog", rq, "Event types", map[string]any{"Families": fams})
}

// fieldsOf lists a JSON Schema's top-level properties.
func fieldsOf(schema []byte) []field {
	var s struct {
		Properties map[string]struct {
			Type        any    `json:"type"`
			Description string `json:"description"`
			Format      string `json:"format"`
		} `json:"properties"`
		Required []string `json:"required"`
	}
	if json.Unmarshal(schema, &s) != nil {
		return nil
	}
	out := make([]field, 0, len(s.Properties))
	for name, prop := range s.Properties {
		ty := ""
		switch v := prop.Type.(type) {
		case string:
			ty = v
		case []any:
			var parts []string
			for _, x := range v {
				if s, ok := x.(string); ok {
					parts = append(parts, s)
				}
			}
			ty = strings.Join(parts, " or ")
		}
		if prop.Format != "" {
			ty += " (" + prop.Format + ")"
		}
		out = append(out, field{Name: name, Type: ty, Description: prop.Description, Required: slices.Contains(s.Required, name)})
	}
	slices.SortFunc(out, func(a, b field) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// eventFilter is the events list's filter form.
type eventFilter struct {
	Type, Status, Since, Until, EventID, Cursor string
}

func (p *Portal) eventsPage(w http.ResponseWriter, r *http.Request, rq *request) {
	v := r.URL.Query()
	f := eventFilter{Type: v.Get("type"), Status: v.Get("status"), Since: v.Get("since"), Until: v.Get("until"),
		EventID: strings.TrimSpace(v.Get("event_id")), Cursor: v.Get("cursor")}
	if f.EventID != "" {
		http.Redirect(w, r, "/portal/events/"+url.PathEscape(f.EventID), http.StatusSeeOther)
		return
	}
	data := map[string]any{"Filter": f, "Types": p.Catalog.Types(), "Statuses": api.EventStatuses}
	q := deliverylog.EventQuery{Type: f.Type, Status: f.Status, Cursor: f.Cursor, Limit: 50}
	var ok1, ok2 bool
	q.Since, ok1 = parseTime(f.Since)
	q.Until, ok2 = parseTime(f.Until)
	switch {
	case !ok1 || !ok2:
		data["FilterError"] = "Times are dates and times such as 2026-03-04T12:00 (UTC)."
	case p.API == nil:
		data["FilterError"] = "The delivery log is not available."
	default:
		ctx, cancel := p.ctx(r)
		defer cancel()
		list, err := p.API.ListEvents(ctx, rq.sess.Tenant, q)
		switch {
		case err == nil:
			data["Events"] = list.Data
			if list.Next != nil {
				data["Older"] = pageLink(r, *list.Next)
			}
			if list.Prev != nil && f.Cursor != "" {
				data["Newer"] = pageLink(r, *list.Prev)
			}
		case errors.Is(err, deliverylog.ErrBadCursor), errors.Is(err, deliverylog.ErrNotFound):
			data["FilterError"] = "That page of the log is not available; start again from the newest."
		default:
			p.Logger.Warn("portal: events", "err", err)
			data["FilterError"] = "The delivery log is unavailable right now."
		}
	}
	p.render(w, r, http.StatusOK, "events", rq, "Events", data)
}

func (p *Portal) eventPage(w http.ResponseWriter, r *http.Request, rq *request) {
	if p.Log == nil || p.API == nil {
		p.fail(w, r, rq, http.StatusServiceUnavailable, "The delivery log is not available.")
		return
	}
	ctx, cancel := p.ctx(r)
	defer cancel()
	id := r.PathValue("id")
	ev, err := p.API.GetEvent(ctx, rq.sess.Tenant, id)
	if err != nil {
		p.logError(w, r, rq, err)
		return
	}
	pg, err := p.Log.EventAttempts(ctx, rq.sess.Tenant, id, deliverylog.Query{Limit: 100})
	if err != nil {
		p.logError(w, r, rq, err)
		return
	}
	var body bytes.Buffer
	if json.Indent(&body, ev.Event, "", "  ") != nil {
		body.Reset()
		body.Write(ev.Event)
	}
	p.render(w, r, http.StatusOK, "event", rq, "Event "+id, map[string]any{"ID": id, "Event": ev, "Body": body.String(), "Attempts": pg.Data,
		"Recovery": p.Jobs != nil})
}

func (p *Portal) attemptPage(w http.ResponseWriter, r *http.Request, rq *request) {
	if p.Log == nil {
		p.fail(w, r, rq, http.StatusServiceUnavailable, "The delivery log is not available.")
		return
	}
	ctx, cancel := p.ctx(r)
	defer cancel()
	a, err := p.Log.Attempt(ctx, rq.sess.Tenant, r.PathValue("id"))
	if err != nil {
		p.logError(w, r, rq, err)
		return
	}
	headers := make([]string, 0, len(a.RequestHeaders))
	for k := range a.RequestHeaders {
		headers = append(headers, k)
	}
	slices.Sort(headers)
	data := map[string]any{"Attempt": a, "HeaderNames": headers}
	// The request's body is the event as delivered, read back from Kafka.
	if p.API != nil {
		if ev, err := p.API.GetEvent(ctx, rq.sess.Tenant, a.EventID); err == nil && ev.EventUnavailable == "" {
			var body bytes.Buffer
			if json.Indent(&body, ev.Event, "", "  ") == nil {
				data["Body"] = body.String()
			}
		}
	}
	p.render(w, r, http.StatusOK, "attempt", rq, "Attempt "+a.ID, data)
}

// storeError answers a failed store call.
func (p *Portal) storeError(w http.ResponseWriter, r *http.Request, rq *request, err error) {
	switch {
	case errors.Is(err, subscription.ErrNotFound):
		p.fail(w, r, rq, http.StatusNotFound, "There is no such endpoint.")
	case errors.Is(err, subscription.ErrConflict):
		p.fail(w, r, rq, http.StatusConflict, "Someone changed this endpoint at the same time. Reload and try again.")
	default:
		p.Logger.Warn("portal request failed", "path", r.URL.Path, "err", err)
		p.fail(w, r, rq, http.StatusServiceUnavailable, "Something is unavailable right now. Try again in a minute; nothing was changed.")
	}
}

func (p *Portal) logError(w http.ResponseWriter, r *http.Request, rq *request, err error) {
	if errors.Is(err, deliverylog.ErrNotFound) {
		p.fail(w, r, rq, http.StatusNotFound, "Not in the delivery log (it keeps the recent past only).")
		return
	}
	p.storeError(w, r, rq, err)
}
