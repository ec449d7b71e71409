package api

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/hookstream/hookstream/internal/deliverylog"
)

// DeliveryLog is the delivery log the /attempts routes read.
type DeliveryLog interface {
	Attempt(ctx context.Context, tenant, id string) (deliverylog.Entry, error)
	EndpointAttempts(ctx context.Context, tenant, endpointID string, q deliverylog.Query) (deliverylog.Page, error)
	EventAttempts(ctx context.Context, tenant, eventID string, q deliverylog.Query) (deliverylog.Page, error)
	Event(ctx context.Context, tenant, id string) (deliverylog.Event, error)
	Events(ctx context.Context, tenant string, q deliverylog.EventQuery) (deliverylog.EventPage, error)
	DeadDeliveries(ctx context.Context, tenant, endpointID string, q deliverylog.EventQuery) (deliverylog.EventPage, error)
	EndpointStats(ctx context.Context, tenant, endpointID string, window time.Duration) (deliverylog.Stats, error)
}

// WithDeliveryLog serves the delivery log routes from l.
func WithDeliveryLog(l DeliveryLog) Option { return func(c *cfg) { c.deliveryLog = l } }

// attemptView is an attempt as the API shows it. Lists carry the summary
// the index keeps; error, response_body and request_headers come from the
// attempt's Kafka record and are in GET /v1/attempts/{id} only, so lists
// omit them rather than show them empty.
type attemptView struct {
	ID                string            `json:"id"`
	EventID           string            `json:"event_id"`
	EventType         string            `json:"event_type"`
	EndpointID        string            `json:"endpoint_id"`
	Attempt           int               `json:"attempt"`
	Trigger           string            `json:"trigger"`
	Outcome           string            `json:"outcome"`
	StatusCode        int               `json:"status_code"`
	ErrorClass        string            `json:"error_class,omitempty"`
	Error             string            `json:"error,omitempty"`
	LatencyMS         int64             `json:"latency_ms"`
	ResponseBody      string            `json:"response_body,omitempty"`
	ResponseTruncated bool              `json:"response_truncated"`
	RequestHeaders    map[string]string `json:"request_headers,omitempty"`
	At                time.Time         `json:"at"`
}

func attemptOf(e deliverylog.Entry) attemptView {
	return attemptView{
		ID: e.ID, EventID: e.EventID, EventType: e.EventType, EndpointID: e.EndpointID, Attempt: e.Attempt.Attempt,
		Trigger: e.Trigger, Outcome: e.Outcome, StatusCode: e.Status, ErrorClass: e.ErrorClass, Error: e.Error,
		LatencyMS: e.LatencyMS, ResponseBody: e.ResponseBody, ResponseTruncated: e.ResponseTruncated,
		RequestHeaders: e.RequestHeaders, At: e.At,
	}
}

// attemptList is a page of attempts, newest first, with the window it
// covered: what is outside it (older than retention) is not in the log.
type attemptList struct {
	Data   []attemptView `json:"data"`
	Next   *string       `json:"next"`
	Prev   *string       `json:"prev"`
	Window struct {
		Since time.Time `json:"since"`
		Until time.Time `json:"until"`
	} `json:"window"`
}

// logRequest authenticates and resolves the tenant of a delivery log route.
func (s *Server) logRequest(w http.ResponseWriter, r *http.Request) (string, bool) {
	tok, ok := s.authenticate(w, r)
	if !ok {
		return "", false
	}
	if s.deliveryLog == nil {
		writeError(w, http.StatusServiceUnavailable, CodeUnavailable, "", "the delivery log is not configured on this server")
		return "", false
	}
	return s.tenantFor(w, r, tok, "")
}

// parseLogQuery reads the list parameters; on a bad one it answers 400
// naming it and returns false.
func parseLogQuery(w http.ResponseWriter, r *http.Request) (deliverylog.Query, bool) {
	v := r.URL.Query()
	q := deliverylog.Query{Limit: DefaultPageSize, Cursor: v.Get("cursor")}
	q.Outcome, q.ErrorClass, q.Type, q.EventID, q.Trigger = v.Get("outcome"), v.Get("error_class"), v.Get("type"), v.Get("event_id"), v.Get("trigger")
	bad := func(field, msg string) (deliverylog.Query, bool) {
		writeError(w, http.StatusBadRequest, CodeInvalid, "/"+field, "%s", msg)
		return q, false
	}
	if s := v.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > MaxPageSize {
			return bad("limit", "limit must be an integer from 1 to 250")
		}
		q.Limit = n
	}
	if s := v.Get("status_code"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 100 || n > 599 {
			return bad("status_code", "status_code must be an HTTP status code (100-599)")
		}
		q.StatusCode = n
	}
	if s := v.Get("code_class"); s != "" {
		switch s {
		case "1xx", "2xx", "3xx", "4xx", "5xx":
			q.CodeClass = int(s[0] - '0')
		default:
			return bad("code_class", "code_class must be one of 1xx, 2xx, 3xx, 4xx, 5xx")
		}
	}
	for _, t := range []struct {
		name string
		to   *time.Time
	}{{"since", &q.Since}, {"until", &q.Until}} {
		if s := v.Get(t.name); s != "" {
			ts, err := time.Parse(time.RFC3339, s)
			if err != nil {
				return bad(t.name, t.name+" must be an RFC 3339 time")
			}
			*t.to = ts
		}
	}
	return q, true
}

func (s *Server) endpointAttempts(w http.ResponseWriter, r *http.Request) {
	tenant, ok := s.logRequest(w, r)
	if !ok {
		return
	}
	q, ok := parseLogQuery(w, r)
	if !ok {
		return
	}
	ctx, cancel := s.storeContext(r)
	defer cancel()
	if !s.tenantEndpoint(ctx, w, r, tenant) {
		return
	}
	pg, err := s.deliveryLog.EndpointAttempts(ctx, tenant, r.PathValue("id"), q)
	s.writeAttempts(w, r, pg, err, false)
}

func (s *Server) eventAttempts(w http.ResponseWriter, r *http.Request) {
	tenant, ok := s.logRequest(w, r)
	if !ok {
		return
	}
	q, ok := parseLogQuery(w, r)
	if !ok {
		return
	}
	ctx, cancel := s.storeContext(r)
	defer cancel()
	pg, err := s.deliveryLog.EventAttempts(ctx, tenant, r.PathValue("id"), q)
	// No attempt of the event in this tenant's log: not its event, or not
	// (or no longer) in the log.
	s.writeAttempts(w, r, pg, err, q.Cursor == "" && q.Filter == (deliverylog.Filter{}))
}

func (s *Server) getAttempt(w http.ResponseWriter, r *http.Request) {
	tenant, ok := s.logRequest(w, r)
	if !ok {
		return
	}
	ctx, cancel := s.storeContext(r)
	defer cancel()
	e, err := s.deliveryLog.Attempt(ctx, tenant, r.PathValue("id"))
	if err != nil {
		s.logError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, attemptOf(e))
}

func (s *Server) writeAttempts(w http.ResponseWriter, r *http.Request, pg deliverylog.Page, err error, emptyIs404 bool) {
	if err == nil && emptyIs404 && len(pg.Data) == 0 {
		err = deliverylog.ErrNotFound
	}
	if err != nil {
		s.logError(w, r, err)
		return
	}
	out := attemptList{Data: make([]attemptView, len(pg.Data))}
	for i, e := range pg.Data {
		out.Data[i] = attemptOf(e)
	}
	if pg.Next != "" {
		out.Next = &pg.Next
	}
	if pg.Prev != "" {
		out.Prev = &pg.Prev
	}
	out.Window.Since, out.Window.Until = pg.Since.UTC(), pg.Until.UTC()
	writeJSON(w, http.StatusOK, &out)
}

func (s *Server) logError(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, deliverylog.ErrNotFound):
		writeError(w, http.StatusNotFound, CodeNotFound, "", "not found: %s", r.URL.Path)
	case errors.Is(err, deliverylog.ErrBadCursor):
		writeError(w, http.StatusBadRequest, CodeInvalid, "/cursor", "cursor is not one this API handed out")
	case unavailable(err), errors.Is(err, context.Canceled):
		writeError(w, http.StatusServiceUnavailable, CodeUnavailable, "", "Redis is unavailable; retry later")
	default:
		s.log.Error("delivery log request failed", "path", r.URL.Path, "err", err)
		writeError(w, http.StatusInternalServerError, codeInternal, "", "internal error")
	}
}

// tenantEndpoint answers for the endpoint routes of the delivery log whether
// the {id} endpoint is the tenant's: another tenant's id is 404, not an
// empty list.
func (s *Server) tenantEndpoint(ctx context.Context, w http.ResponseWriter, r *http.Request, tenant string) bool {
	if s.endpoints == nil {
		return true
	}
	if _, err := s.endpoints.Get(ctx, tenant, r.PathValue("id")); err != nil {
		s.endpointError(w, r, err)
		return false
	}
	return true
}
