package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/hookstream/hookstream/internal/deliverylog"
	"github.com/hookstream/hookstream/subscription"
)

// EventReader reads an event's bytes back from Kafka
// (*deliverylog.Reader).
type EventReader interface {
	Read(ctx context.Context, loc deliverylog.Location) ([]byte, error)
}

// WithEventReader lets GET /v1/events/{id} show the event as delivered,
// read back from Kafka (default: its id and type only).
func WithEventReader(r EventReader) Option { return func(c *cfg) { c.eventReader = r } }

// Window is the time span a list or a sum covered: what is older than the
// delivery log's retention is not in it.
type Window struct {
	Since time.Time `json:"since"`
	Until time.Time `json:"until"`
}

// DeliveryView is one delivery of an event to an endpoint.
type DeliveryView struct {
	EndpointID     string     `json:"endpoint_id"`
	Status         string     `json:"status"`
	Attempts       int        `json:"attempts"`
	LastStatusCode *int       `json:"last_status_code"`
	LastAttemptAt  *time.Time `json:"last_attempt_at"`
	NextAttemptAt  *time.Time `json:"next_attempt_at"`
	Error          string     `json:"error,omitempty"`
}

func deliveryOf(d deliverylog.Delivery) DeliveryView {
	v := DeliveryView{EndpointID: d.EndpointID, Status: d.Status, Attempts: d.Attempts, Error: d.DeadReason}
	if v.Error == "" {
		v.Error = d.CancelReason
	}
	if !d.LastAttemptAt.IsZero() {
		at, code := d.LastAttemptAt.UTC(), d.LastStatusCode
		v.LastAttemptAt, v.LastStatusCode = &at, &code
	}
	if !d.NextAttemptAt.IsZero() {
		next := d.NextAttemptAt.UTC()
		v.NextAttemptAt = &next
	}
	return v
}

// EventSummary is one event of GET /v1/events.
type EventSummary struct {
	ID        string     `json:"id"`
	Event     string     `json:"event"`
	Timestamp *time.Time `json:"timestamp"`
	Status    string     `json:"status"`
	// Endpoints counts the event's deliveries by status.
	Endpoints map[string]int `json:"endpoints"`
}

// EventList is a page of GET /v1/events.
type EventList struct {
	Data   []EventSummary `json:"data"`
	Next   *string        `json:"next"`
	Prev   *string        `json:"prev"`
	Window Window         `json:"window"`
}

func cursors(next, prev string) (n, p *string) {
	if next != "" {
		n = &next
	}
	if prev != "" {
		p = &prev
	}
	return n, p
}

// EventStatuses are the statuses GET /v1/events filters on.
var EventStatuses = []string{deliverylog.EventNoEndpoints, deliverylog.StatusPending, deliverylog.StatusDelivered, deliverylog.EventFailing, deliverylog.StatusDead}

// ListEvents is GET /v1/events for a tenant (the portal calls it too).
func (s *Server) ListEvents(ctx context.Context, tenant string, q deliverylog.EventQuery) (EventList, error) {
	if s.deliveryLog == nil {
		return EventList{}, errNoLog
	}
	pg, err := s.deliveryLog.Events(ctx, tenant, q)
	if err != nil {
		return EventList{}, err
	}
	out := EventList{Data: make([]EventSummary, len(pg.Data)), Window: Window{pg.Since.UTC(), pg.Until.UTC()}}
	out.Next, out.Prev = cursors(pg.Next, pg.Prev)
	for i, ev := range pg.Data {
		sum := EventSummary{ID: ev.ID, Event: ev.Type, Status: ev.Status, Endpoints: map[string]int{}}
		if !ev.At.IsZero() {
			at := ev.At.UTC()
			sum.Timestamp = &at
		}
		for _, d := range ev.Deliveries {
			sum.Endpoints[d.Status]++
		}
		out.Data[i] = sum
	}
	return out, nil
}

// DeadView is one dead-lettered delivery of GET /v1/endpoints/{id}/dead.
type DeadView struct {
	EventID   string     `json:"event_id"`
	EventType string     `json:"event_type"`
	Timestamp *time.Time `json:"timestamp"`
	DeliveryView
}

// DeadList is a page of GET /v1/endpoints/{id}/dead.
type DeadList struct {
	Data   []DeadView `json:"data"`
	Next   *string    `json:"next"`
	Prev   *string    `json:"prev"`
	Window Window     `json:"window"`
}

// ListDead is GET /v1/endpoints/{id}/dead for a tenant whose endpoint the
// caller checked.
func (s *Server) ListDead(ctx context.Context, tenant, endpointID string, q deliverylog.EventQuery) (DeadList, error) {
	if s.deliveryLog == nil {
		return DeadList{}, errNoLog
	}
	pg, err := s.deliveryLog.DeadDeliveries(ctx, tenant, endpointID, q)
	if err != nil {
		return DeadList{}, err
	}
	out := DeadList{Data: make([]DeadView, len(pg.Data)), Window: Window{pg.Since.UTC(), pg.Until.UTC()}}
	out.Next, out.Prev = cursors(pg.Next, pg.Prev)
	for i, ev := range pg.Data {
		v := DeadView{EventID: ev.ID, EventType: ev.Type}
		if !ev.At.IsZero() {
			at := ev.At.UTC()
			v.Timestamp = &at
		}
		if len(ev.Deliveries) == 1 {
			v.DeliveryView = deliveryOf(ev.Deliveries[0])
		}
		out.Data[i] = v
	}
	return out, nil
}

// StatsView is GET /v1/endpoints/{id}/stats.
type StatsView struct {
	Window      string   `json:"window"`
	Covered     Window   `json:"covered"`
	Delivered   int64    `json:"delivered"`
	Failed      int64    `json:"failed"`
	Dead        int64    `json:"dead"`
	SuccessRate *float64 `json:"success_rate"` // null: no attempts
	LatencyMS   struct {
		P50 int64 `json:"p50"`
		P99 int64 `json:"p99"`
	} `json:"latency_ms"`
	State        string     `json:"state"` // healthy, failing, disabled
	FailingSince *time.Time `json:"failing_since"`
}

// Endpoint states of StatsView.
const (
	StateHealthy  = "healthy"
	StateFailing  = "failing"
	StateDisabled = "disabled"
)

// EndpointStats is GET /v1/endpoints/{id}/stats for the tenant's endpoint.
func (s *Server) EndpointStats(ctx context.Context, tenant, endpointID string, window time.Duration) (StatsView, error) {
	if s.deliveryLog == nil {
		return StatsView{}, errNoLog
	}
	disabled := false
	if s.endpoints != nil {
		ep, err := s.endpoints.Get(ctx, tenant, endpointID)
		if err != nil {
			return StatsView{}, err
		}
		disabled = ep.Disabled
	}
	st, err := s.deliveryLog.EndpointStats(ctx, tenant, endpointID, window)
	if err != nil {
		return StatsView{}, err
	}
	v := StatsView{Window: window.String(), Covered: Window{st.Since.UTC(), st.Until.UTC()}, Delivered: st.Delivered, Failed: st.Failed, Dead: st.Dead, State: StateHealthy}
	if st.SuccessRate >= 0 {
		v.SuccessRate = &st.SuccessRate
	}
	v.LatencyMS.P50, v.LatencyMS.P99 = st.P50MS, st.P99MS
	if !st.FailingSince.IsZero() {
		fs := st.FailingSince.UTC()
		v.State, v.FailingSince = StateFailing, &fs
	}
	if disabled {
		v.State = StateDisabled
	}
	return v, nil
}

var errNoLog = errors.New("api: the delivery log is not configured on this server")

// parseEventQuery reads GET /v1/events' and /dead's parameters.
func parseEventQuery(w http.ResponseWriter, r *http.Request) (deliverylog.EventQuery, bool) {
	lq, ok := parseLogQuery(w, r)
	if !ok {
		return deliverylog.EventQuery{}, false
	}
	v := r.URL.Query()
	q := deliverylog.EventQuery{Type: v.Get("type"), Status: v.Get("status"), Endpoint: v.Get("endpoint"),
		Since: lq.Since, Until: lq.Until, Limit: lq.Limit, Cursor: lq.Cursor}
	if q.Status != "" {
		ok := false
		for _, st := range EventStatuses {
			ok = ok || st == q.Status
		}
		if !ok {
			writeError(w, http.StatusBadRequest, CodeInvalid, "/status", "status must be one of no_endpoints, pending, delivered, failing, dead")
			return q, false
		}
	}
	return q, true
}

func (s *Server) listEvents(w http.ResponseWriter, r *http.Request) {
	tenant, ok := s.logRequest(w, r)
	if !ok {
		return
	}
	q, ok := parseEventQuery(w, r)
	if !ok {
		return
	}
	ctx, cancel := s.storeContext(r)
	defer cancel()
	if q.Endpoint != "" && s.endpoints != nil {
		if _, err := s.endpoints.Get(ctx, tenant, q.Endpoint); err != nil {
			if errors.Is(err, subscription.ErrNotFound) {
				writeError(w, http.StatusNotFound, CodeNotFound, "/endpoint", "no endpoint %q", q.Endpoint)
				return
			}
			s.endpointError(w, r, err)
			return
		}
	}
	out, err := s.ListEvents(ctx, tenant, q)
	if err != nil {
		s.logError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, &out)
}

func (s *Server) endpointDead(w http.ResponseWriter, r *http.Request) {
	tenant, ok := s.logRequest(w, r)
	if !ok {
		return
	}
	q, ok := parseEventQuery(w, r)
	if !ok {
		return
	}
	ctx, cancel := s.storeContext(r)
	defer cancel()
	if !s.tenantEndpoint(ctx, w, r, tenant) {
		return
	}
	out, err := s.ListDead(ctx, tenant, r.PathValue("id"), q)
	if err != nil {
		s.logError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, &out)
}

func (s *Server) endpointStats(w http.ResponseWriter, r *http.Request) {
	tenant, ok := s.logRequest(w, r)
	if !ok {
		return
	}
	window := time.Hour
	if v := r.URL.Query().Get("window"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			writeError(w, http.StatusBadRequest, CodeInvalid, "/window", "window must be a positive duration such as 15m, 1h or 24h")
			return
		}
		window = d
	}
	ctx, cancel := s.storeContext(r)
	defer cancel()
	if !s.tenantEndpoint(ctx, w, r, tenant) {
		return
	}
	out, err := s.EndpointStats(ctx, tenant, r.PathValue("id"), window)
	if err != nil {
		s.logError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, &out)
}

// EventDetail is GET /v1/events/{id}.
type EventDetail struct {
	// Event is the envelope as delivered, read back from Kafka; only its
	// id and type when Kafka no longer has it.
	Event      json.RawMessage `json:"event"`
	Status     string          `json:"status"`
	Timestamp  *time.Time      `json:"timestamp"`
	Deliveries []DeliveryView  `json:"deliveries"`
	// EventUnavailable says why Event is not the full envelope.
	EventUnavailable string `json:"event_unavailable,omitempty"`
}

// GetEvent is GET /v1/events/{id} for a tenant.
func (s *Server) GetEvent(ctx context.Context, tenant, id string) (EventDetail, error) {
	if s.deliveryLog == nil {
		return EventDetail{}, errNoLog
	}
	ev, err := s.deliveryLog.Event(ctx, tenant, id)
	if err != nil {
		return EventDetail{}, err
	}
	out := EventDetail{Status: ev.Status, Deliveries: make([]DeliveryView, len(ev.Deliveries))}
	if !ev.At.IsZero() {
		at := ev.At.UTC()
		out.Timestamp = &at
	}
	for i, d := range ev.Deliveries {
		out.Deliveries[i] = deliveryOf(d)
	}
	loc := ev.Source
	switch {
	case s.eventReader == nil:
		out.EventUnavailable = "this server does not read events back from Kafka"
	case loc.Topic == "":
		out.EventUnavailable = "the event's record is not indexed yet"
	default:
		body, err := s.eventReader.Read(ctx, loc)
		switch {
		case err == nil && json.Valid(body):
			out.Event = body
		case errors.Is(err, deliverylog.ErrGone):
			out.EventUnavailable = "the event is past the Kafka topic's retention"
		case err != nil:
			return EventDetail{}, err
		default:
			out.EventUnavailable = "the event's record is not JSON"
		}
	}
	if out.Event == nil {
		out.Event, _ = json.Marshal(map[string]string{"id": ev.ID, "event": ev.Type})
	}
	return out, nil
}

func (s *Server) getEvent(w http.ResponseWriter, r *http.Request) {
	tenant, ok := s.logRequest(w, r)
	if !ok {
		return
	}
	ctx, cancel := s.storeContext(r)
	defer cancel()
	out, err := s.GetEvent(ctx, tenant, r.PathValue("id"))
	if err != nil {
		s.logError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, &out)
}
