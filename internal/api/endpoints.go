package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/segmentio/encoding/json"

	"github.com/hookstream/hookstream/envelope"
	"github.com/hookstream/hookstream/internal/jsonptr"
	"github.com/hookstream/hookstream/subscription"
)

// Endpoints is the endpoint store the /v1/endpoints handlers use;
// *subscription.Store is one. Errors: subscription.ErrNotFound (404, also
// for another tenant's id), *subscription.FieldError (422),
// subscription.ErrConflict (409), subscription.ErrUnavailable (503).
type Endpoints interface {
	Create(ctx context.Context, tenant string, in subscription.EndpointInput) (*subscription.Endpoint, error)
	Get(ctx context.Context, tenant, id string) (*subscription.Endpoint, error)
	List(ctx context.Context, tenant, cursor string, limit int) ([]*subscription.Endpoint, string, error)
	Update(ctx context.Context, tenant, id string, p subscription.Patch) (*subscription.Endpoint, error)
	Delete(ctx context.Context, tenant, id string) error
	RotateSecret(ctx context.Context, tenant, id string, grace time.Duration) (*subscription.Endpoint, error)
}

// Page sizes of GET /v1/endpoints.
const (
	DefaultPageSize = 50
	MaxPageSize     = 250
)

const codeInternal = "internal"

// endpointView is an endpoint as the API shows it: the secret only right
// after create and rotate-secret, never the list of secrets, and
// credential-like custom header values masked.
type endpointView struct {
	ID             string            `json:"id"`
	Tenant         string            `json:"tenant"`
	URL            string            `json:"url"`
	Description    string            `json:"description,omitempty"`
	Events         []string          `json:"events"`
	Signature      string            `json:"signature"`
	Ordering       string            `json:"ordering"`
	RateLimit      int               `json:"rate_limit"`
	Headers        map[string]string `json:"headers,omitempty"`
	Timeout        string            `json:"timeout,omitempty"` // a Go duration; absent: the deliverer's
	Disabled       bool              `json:"disabled"`
	DisabledReason string            `json:"disabled_reason,omitempty"`
	Version        int64             `json:"version"`
	CreatedAt      time.Time         `json:"created_at"`
	UpdatedAt      time.Time         `json:"updated_at"`
	Secret         string            `json:"secret,omitempty"`
	// SecretsExpireAt lists when the previous secrets stop signing, while
	// a rotation's grace period runs.
	SecretsExpireAt []time.Time `json:"previous_secrets_expire_at,omitempty"`
}

func view(e *subscription.Endpoint, withSecret bool) *endpointView {
	v := &endpointView{
		ID: e.ID, Tenant: e.Tenant, URL: e.URL, Description: e.Description, Events: e.Events,
		Signature: e.Signature, Ordering: e.Ordering, RateLimit: e.RateLimit, Headers: subscription.MaskedHeaders(e.Headers),
		Disabled: e.Disabled, DisabledReason: e.DisabledReason, Version: e.Version,
		CreatedAt: e.CreatedAt, UpdatedAt: e.UpdatedAt,
	}
	if e.Timeout > 0 {
		v.Timeout = e.Timeout.String()
	}
	for i, s := range e.Secrets {
		if i == 0 && withSecret {
			v.Secret = s.Value
		}
		if !s.ExpiresAt.IsZero() {
			v.SecretsExpireAt = append(v.SecretsExpireAt, s.ExpiresAt)
		}
	}
	return v
}

// storeContext bounds a handler's store call, which answers 503 when the
// bound passes: reads wait while the Redis cache is rebuilt from Kafka, so
// with Kafka down a request would otherwise hang until the client gave up.
// The bound is the backend timeout (WithBackendTimeout, default
// DefaultBackendTimeout): how long the API waits for Kafka or Redis before
// answering 503, whether for an event or for an endpoint.
func (s *Server) storeContext(r *http.Request) (context.Context, context.CancelFunc) {
	d := s.backendTimeout
	if d <= 0 {
		d = DefaultBackendTimeout
	}
	return context.WithTimeout(r.Context(), d)
}

// endpointsReady authenticates and checks the store is configured.
func (s *Server) endpointsReady(w http.ResponseWriter, r *http.Request) (string, bool) {
	tok, ok := s.authenticate(w, r)
	if !ok {
		return "", false
	}
	if s.endpoints == nil {
		writeError(w, http.StatusServiceUnavailable, CodeUnavailable, "", "endpoint management is not configured on this server")
		return "", false
	}
	return tok, true
}

// endpointRequest starts a /v1/endpoints handler: it authenticates, checks
// the store is configured, reads the JSON object body into fields (a nil
// fields: the request has no body; "tenant", where an admin token names
// the tenant, is added) and resolves the tenant the request acts for. When
// it returns false it has answered the request.
func (s *Server) endpointRequest(w http.ResponseWriter, r *http.Request, fields map[string]any) (tenant string, ok bool) {
	tok, ok := s.endpointsReady(w, r)
	if !ok {
		return "", false
	}
	if fields != nil {
		fields["tenant"] = &tenant
		if !s.decodeObject(w, r, false, fields) {
			return "", false
		}
	}
	return s.tenantFor(w, r, tok, tenant)
}

func (s *Server) createEndpoint(w http.ResponseWriter, r *http.Request) {
	var in subscription.EndpointInput
	tenant, ok := s.endpointRequest(w, r, map[string]any{
		"url": &in.URL, "events": &in.Events, "description": &in.Description,
		"secret": &in.Secret, "signature": &in.Signature, "ordering": &in.Ordering,
		"rate_limit": &in.RateLimit, "headers": &in.Headers, "timeout": (*duration)(&in.Timeout),
	})
	if !ok {
		return
	}
	ctx, cancel := s.storeContext(r)
	defer cancel()
	e, err := s.endpoints.Create(ctx, tenant, in)
	if err = s.recorded(r, err); err != nil {
		s.endpointError(w, r, err)
		return
	}
	w.Header().Set("Location", "/v1/endpoints/"+e.ID)
	writeJSON(w, http.StatusCreated, view(e, true))
}

// listBody is a page of GET /v1/endpoints; Next is null on the last page.
type listBody struct {
	Data []*endpointView `json:"data"`
	Next *string         `json:"next"`
}

func (s *Server) listEndpoints(w http.ResponseWriter, r *http.Request) {
	tenant, ok := s.endpointRequest(w, r, nil)
	if !ok {
		return
	}
	q := r.URL.Query()
	limit := DefaultPageSize
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > MaxPageSize {
			writeError(w, http.StatusBadRequest, CodeInvalid, "/limit", "limit must be an integer from 1 to %d", MaxPageSize)
			return
		}
		limit = n
	}
	ctx, cancel := s.storeContext(r)
	defer cancel()
	eps, next, err := s.endpoints.List(ctx, tenant, q.Get("cursor"), limit)
	if err != nil {
		s.endpointError(w, r, err)
		return
	}
	body := listBody{Data: make([]*endpointView, len(eps))}
	if next != "" {
		body.Next = &next
	}
	for i, e := range eps {
		body.Data[i] = view(e, false)
	}
	writeJSON(w, http.StatusOK, &body)
}

func (s *Server) getEndpoint(w http.ResponseWriter, r *http.Request) {
	if e, ok := s.requestedEndpoint(w, r); ok {
		writeJSON(w, http.StatusOK, view(e, false))
	}
}

// requestedEndpoint answers a bodiless request for the {id} endpoint with
// it, or answers why not (ok false).
func (s *Server) requestedEndpoint(w http.ResponseWriter, r *http.Request) (*subscription.Endpoint, bool) {
	tenant, ok := s.endpointRequest(w, r, nil)
	if !ok {
		return nil, false
	}
	ctx, cancel := s.storeContext(r)
	defer cancel()
	return s.pathEndpoint(ctx, w, r, tenant)
}

// pathEndpoint returns the tenant's {id} endpoint, or answers why not (ok
// false).
func (s *Server) pathEndpoint(ctx context.Context, w http.ResponseWriter, r *http.Request, tenant string) (*subscription.Endpoint, bool) {
	e, err := s.endpoints.Get(ctx, tenant, r.PathValue("id"))
	if err != nil {
		s.endpointError(w, r, err)
		return nil, false
	}
	return e, true
}

// getSecret answers the endpoint's newest signing secret, for a customer
// who lost it (as Svix's GET .../secret does); during a rotation the old
// one is still in previous_secrets_expire_at's grace.
func (s *Server) getSecret(w http.ResponseWriter, r *http.Request) {
	if e, ok := s.requestedEndpoint(w, r); ok {
		writeJSON(w, http.StatusOK, map[string]string{"secret": view(e, true).Secret})
	}
}

func (s *Server) updateEndpoint(w http.ResponseWriter, r *http.Request) {
	var p subscription.Patch
	var timeout *duration
	tenant, ok := s.endpointRequest(w, r, map[string]any{
		"url": &p.URL, "events": &p.Events, "description": &p.Description,
		"signature": &p.Signature, "ordering": &p.Ordering, "rate_limit": &p.RateLimit,
		"headers": &p.Headers, "disabled": &p.Disabled, "timeout": &timeout,
	})
	if !ok {
		return
	}
	p.Timeout = (*time.Duration)(timeout)
	ctx, cancel := s.storeContext(r)
	defer cancel()
	e, err := s.endpoints.Update(ctx, tenant, r.PathValue("id"), p)
	if err = s.recorded(r, err); err != nil {
		s.endpointError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, view(e, false))
}

func (s *Server) deleteEndpoint(w http.ResponseWriter, r *http.Request) {
	tenant, ok := s.endpointRequest(w, r, nil)
	if !ok {
		return
	}
	ctx, cancel := s.storeContext(r)
	defer cancel()
	if err := s.recorded(r, s.endpoints.Delete(ctx, tenant, r.PathValue("id"))); err != nil {
		s.endpointError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// rotateSecret does not use endpointRequest: its body may be empty, and a
// malformed grace is answered before the tenant is resolved.
func (s *Server) rotateSecret(w http.ResponseWriter, r *http.Request) {
	tok, ok := s.endpointsReady(w, r)
	if !ok {
		return
	}
	var tenant string
	grace := subscription.DefaultGrace.String()
	if !s.decodeObject(w, r, true, map[string]any{"tenant": &tenant, "grace": &grace}) {
		return
	}
	d, err := time.ParseDuration(grace)
	if err != nil {
		writeError(w, http.StatusUnprocessableEntity, CodeInvalid, "/grace", "grace must be a duration such as \"24h\" or \"0s\"")
		return
	}
	tenant, ok = s.tenantFor(w, r, tok, tenant)
	if !ok {
		return
	}
	ctx, cancel := s.storeContext(r)
	defer cancel()
	e, err := s.endpoints.RotateSecret(ctx, tenant, r.PathValue("id"), d)
	if err = s.recorded(r, err); err != nil {
		s.endpointError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, view(e, true))
}

// decodeObject reads a JSON object body into fields (name -> pointer). It
// answers 413 for a body over the limit, 400 when the body is not a JSON
// object, and 422 naming the field for an unknown field or a value of the
// wrong type. An empty body is accepted only when optional.
func (s *Server) decodeObject(w http.ResponseWriter, r *http.Request, optional bool, fields map[string]any) bool {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.maxBody))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			writeError(w, http.StatusRequestEntityTooLarge, CodeTooLarge, "", "request body is larger than %d bytes", s.maxBody)
			return false
		}
		writeError(w, http.StatusBadRequest, CodeMalformed, "", "reading the request body: %v", err)
		return false
	}
	if optional && strings.TrimSpace(string(b)) == "" {
		return true
	}
	// The same checks as an event body: a deep body would exhaust the
	// parser's stack, and of two equal keys parsers disagree which wins.
	if nestedTooDeep(b, MaxDepth) {
		writeError(w, http.StatusBadRequest, CodeMalformed, "", "JSON nested more than %d levels deep", MaxDepth)
		return false
	}
	if ptr, ok := envelope.RepeatedKey(b); ok {
		writeError(w, http.StatusBadRequest, CodeMalformed, ptr, "repeated key; each key may appear once per object")
		return false
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil || raw == nil {
		writeError(w, http.StatusBadRequest, CodeMalformed, "", "request body must be a JSON object")
		return false
	}
	for name, v := range raw {
		field := jsonptr.Token(name)
		target, ok := fields[name]
		if !ok {
			msg := "unknown field"
			if name == "secret" {
				msg = "the secret cannot be changed here; use POST /v1/endpoints/{id}/rotate-secret"
			}
			writeError(w, http.StatusUnprocessableEntity, CodeInvalid, field, "%s", msg)
			return false
		}
		if err := json.Unmarshal(v, target); err != nil {
			writeError(w, http.StatusUnprocessableEntity, CodeInvalid, field, "wrong type of value: %v", err)
			return false
		}
	}
	return true
}

// duration reads a JSON string such as "30s" (time.ParseDuration).
type duration time.Duration

func (d *duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return errors.New(`want a duration such as "30s"`)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf(`want a duration such as "30s", not %q`, s)
	}
	*d = duration(v)
	return nil
}

// recorded is err, or nil when the write is recorded and only its cache
// lags (subscription.ErrNotCached): the change is accepted, and answering
// 503 ("nothing was accepted; retry") would have a retried create make a
// second endpoint.
func (s *Server) recorded(r *http.Request, err error) error {
	if errors.Is(err, subscription.ErrNotCached) {
		s.log.Warn("endpoint write accepted; Redis has not taken it yet", "path", r.URL.Path, "err", err)
		return nil
	}
	return err
}

// endpointError answers a store error.
func (s *Server) endpointError(w http.ResponseWriter, r *http.Request, err error) {
	var fe *subscription.FieldError
	switch {
	case errors.As(err, &fe):
		writeError(w, http.StatusUnprocessableEntity, CodeInvalid, fe.Field, "%s", fe.Message)
	case errors.Is(err, subscription.ErrNotFound):
		writeError(w, http.StatusNotFound, CodeNotFound, "", "no endpoint %q", r.PathValue("id"))
	case errors.Is(err, subscription.ErrBadCursor):
		writeError(w, http.StatusBadRequest, CodeInvalid, "/cursor", "the cursor is not one a listing of endpoints returned")
	case errors.Is(err, subscription.ErrConflict):
		writeError(w, http.StatusConflict, CodeConflict, "", "%v", err)
	case errors.Is(err, subscription.ErrUnavailable), unavailable(err), errors.Is(err, context.Canceled):
		s.log.Warn("endpoint request failed: dependency unavailable", "path", r.URL.Path, "err", err)
		writeError(w, http.StatusServiceUnavailable, CodeUnavailable, "", "Kafka or Redis is unavailable; retry later")
	default:
		s.log.Error("endpoint request failed", "path", r.URL.Path, "err", err)
		writeError(w, http.StatusInternalServerError, codeInternal, "", "internal error")
	}
}
