// Package api serves Hookstream's HTTP API: event ingest and endpoint
// management. Errors are JSON bodies naming the offending field:
//
//	{"error": {"code": "schema_violation", "message": "...", "field": "/data/amount"}}
package api

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/segmentio/encoding/json"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/hookstream/hookstream/internal/ops"
	"github.com/hookstream/hookstream/schemas"
)

// AdminTenant is the tenant value of a token that may act for every tenant.
const AdminTenant = "*"

// ErrBadTokens is wrapped by ParseTokens for a malformed token list.
var ErrBadTokens = errors.New("api: bad token list")

// Tokens maps bearer tokens to the tenant they act for.
type Tokens map[string]string

// lookup finds tok's tenant comparing with every token in constant time,
// so response timing tells nothing about how much of a guess was right.
func (t Tokens) lookup(tok string) (string, bool) {
	want := sha256.Sum256([]byte(tok))
	tenant, found := "", 0
	for k, v := range t {
		h := sha256.Sum256([]byte(k))
		if subtle.ConstantTimeCompare(h[:], want[:]) == 1 {
			tenant, found = v, 1
		}
	}
	return tenant, found == 1
}

// ParseTokens parses "token=tenant,token2=tenant2"; a tenant of "*" makes an
// admin token.
func ParseTokens(s string) (Tokens, error) {
	t := Tokens{}
	for i, pair := range strings.Split(s, ",") {
		pair = strings.TrimSpace(pair)
		if pair == "" {
			continue
		}
		tok, tenant, ok := strings.Cut(pair, "=")
		tok, tenant = strings.TrimSpace(tok), strings.TrimSpace(tenant)
		if !ok || tok == "" || tenant == "" {
			// The entry is not quoted: it may be a token, and errors
			// reach logs.
			return nil, fmt.Errorf("%w: entry %d is not token=tenant", ErrBadTokens, i+1)
		}
		t[tok] = tenant
	}
	return t, nil
}

type cfg struct {
	tokens    Tokens
	log       *slog.Logger
	catalog   *schemas.Catalog
	publisher Publisher
	endpoints Endpoints
	// deliveryLog serves the delivery log routes; nil: they answer 503.
	deliveryLog DeliveryLog
	eventReader EventReader // logevents.go
	maxBody     int64
	// backendTimeout bounds how long a request waits for Kafka or Redis
	// (WithBackendTimeout, events.go).
	backendTimeout time.Duration
	tracer         trace.TracerProvider
	propagator     propagation.TextMapPropagator
	brand          string         // WithBrand, docs.go
	portal         PortalSessions // WithPortal, portal.go; nil: 503
	portalURL      string

	// jobs and failing serve the recovery routes (WithJobs, jobs.go).
	jobs    Jobs
	failing FailingLog
	// recoverLimit: WithRecoverLimit (0: recovery.MaxRecoverEvents).
	recoverLimit int
}

// Option configures a Server.
type Option func(*cfg)

// WithTokens sets the accepted bearer tokens (default none: every request is 401).
func WithTokens(t Tokens) Option { return func(c *cfg) { c.tokens = t } }

// WithLogger sets the logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(c *cfg) { c.log = l } }

// WithCatalog sets the event-type catalog (required).
func WithCatalog(cat *schemas.Catalog) Option { return func(c *cfg) { c.catalog = cat } }

// WithPublisher sets where accepted events go (required for /v1/events).
func WithPublisher(p Publisher) Option { return func(c *cfg) { c.publisher = p } }

// WithEndpoints sets the endpoint store (required for /v1/endpoints).
func WithEndpoints(e Endpoints) Option { return func(c *cfg) { c.endpoints = e } }

// WithMaxBody caps request bodies (default 5 MiB: a batch of 500 events).
func WithMaxBody(n int64) Option { return func(c *cfg) { c.maxBody = n } }

// WithTracerProvider sets where each request's server span goes (default
// otel.GetTracerProvider()). The span's context reaches the publisher, so an
// event's trace starts at ingest.
func WithTracerProvider(tp trace.TracerProvider) Option { return func(c *cfg) { c.tracer = tp } }

// WithPropagator sets how a caller's trace context is read from the request
// headers (default otel.GetTextMapPropagator()).
func WithPropagator(p propagation.TextMapPropagator) Option { return func(c *cfg) { c.propagator = p } }

// Server is the HTTP API.
type Server struct {
	cfg
	spans trace.Tracer
}

// New returns a server.
func New(opts ...Option) *Server {
	c := cfg{log: slog.Default(), maxBody: 5 << 20}
	for _, o := range opts {
		o(&c)
	}
	if c.tracer == nil {
		c.tracer = otel.GetTracerProvider()
	}
	if c.propagator == nil {
		c.propagator = otel.GetTextMapPropagator()
	}
	return &Server{cfg: c, spans: c.tracer.Tracer("hookstream/api")}
}

// Routes lists the API's patterns and handlers, to mount beside /healthz,
// /readyz and /metrics. Each handler runs in a server span of its own.
func (s *Server) Routes() map[string]http.Handler {
	routes := map[string]http.HandlerFunc{
		"POST /v1/events":                       s.publishEvents,
		"GET /v1/event-types":                   s.eventTypes,
		"POST /v1/endpoints":                    s.createEndpoint,
		"GET /v1/endpoints":                     s.listEndpoints,
		"GET /v1/endpoints/{id}":                s.getEndpoint,
		"GET /v1/endpoints/{id}/secret":         s.getSecret,
		"PATCH /v1/endpoints/{id}":              s.updateEndpoint,
		"DELETE /v1/endpoints/{id}":             s.deleteEndpoint,
		"POST /v1/endpoints/{id}/rotate-secret": s.rotateSecret,
		"GET /v1/endpoints/{id}/attempts":       s.endpointAttempts,
		"GET /v1/events/{id}/attempts":          s.eventAttempts,
		"GET /v1/attempts/{id}":                 s.getAttempt,
		"GET /v1/events/{id}":                   s.getEvent,
		"GET /v1/events":                        s.listEvents,
		"GET /v1/endpoints/{id}/stats":          s.endpointStats,
		"GET /v1/endpoints/{id}/dead":           s.endpointDead,
		"GET /v1/openapi.json":                  s.serveOpenAPI,
		"GET /v1/asyncapi.json":                 s.serveAsyncAPI,
		"GET /docs/events":                      s.serveEventsPage,
		"POST /v1/portal/sessions":              s.createPortalSession,
		"POST /v1/portal/sessions/revoke":       s.revokePortalSessions,
	}
	for pattern, h := range s.jobRoutes() {
		routes[pattern] = h
	}
	out := make(map[string]http.Handler, len(routes))
	for pattern, h := range routes {
		out[pattern] = s.traced(pattern, h)
	}
	return out
}

// traced runs h in a server span named for its route pattern
// ("POST /v1/events"), continuing the caller's trace when the request
// carries one.
func (s *Server) traced(pattern string, h http.HandlerFunc) http.Handler {
	method, route, _ := strings.Cut(pattern, " ")
	start := []trace.SpanStartOption{
		trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(attribute.String("http.request.method", method), attribute.String("http.route", route)),
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := s.propagator.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
		ctx, span := s.spans.Start(ctx, pattern, start...)
		defer span.End()
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		h(sw, r.WithContext(ctx))
		span.SetAttributes(attribute.Int("http.response.status_code", sw.status))
		if sw.status >= 500 {
			span.SetStatus(codes.Error, http.StatusText(sw.status))
		}
	})
}

// statusWriter remembers the status a handler wrote, for its span.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Handler serves the API routes alone (tests; the roles mount Routes on
// their ops server). Unknown routes and methods get JSON errors, as on the
// ops server.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	for p, h := range s.Routes() {
		mux.Handle(p, h)
	}
	return ops.JSONErrors(mux)
}

// Error codes in error bodies.
const (
	CodeMalformed       = "malformed"
	CodeUnauthorized    = "unauthorized"
	CodeForbidden       = "forbidden"
	CodeNotFound        = "not_found"
	CodeConflict        = "conflict"
	CodeTooLarge        = "too_large"
	CodeUnknownType     = "unknown_event_type"
	CodeSchemaViolation = "schema_violation"
	CodeInvalid         = "invalid"
	CodeUnavailable     = "unavailable"
	// CodeMethodNotAllowed answers a known path with the wrong method (405;
	// ops.JSONErrors writes it, and CodeNotFound for unknown routes).
	CodeMethodNotAllowed = "method_not_allowed"
	// CodeRejected means Kafka refused the events for a reason a retry does
	// not fix, such as the service lacking ACLs (500).
	CodeRejected = "rejected"
)

type errorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
		Field   string `json:"field,omitempty"`
	} `json:"error"`
}

// writeError writes the JSON error body; field is a JSON pointer into the
// request body, or "".
func writeError(w http.ResponseWriter, status int, code, field, format string, args ...any) {
	var b errorBody
	b.Error.Code = code
	b.Error.Message = fmt.Sprintf(format, args...)
	b.Error.Field = field
	writeJSON(w, status, &b)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// authenticate returns the token's tenant ("*" for admin), or writes 401.
func (s *Server) authenticate(w http.ResponseWriter, r *http.Request) (string, bool) {
	scheme, tok, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	tok = strings.TrimSpace(tok)
	if !strings.EqualFold(scheme, "Bearer") || tok == "" { // RFC 9110: the scheme is case-insensitive
		writeError(w, http.StatusUnauthorized, CodeUnauthorized, "", "missing bearer token in Authorization header")
		return "", false
	}
	tenant, ok := s.tokens.lookup(tok)
	if !ok {
		writeError(w, http.StatusUnauthorized, CodeUnauthorized, "", "unknown token")
		return "", false
	}
	return tenant, true
}

// tenantFor resolves the tenant a request acts for: the token's own, or for
// an admin token the tenant named in the body (bodyTenant) or ?tenant=.
// It writes the error response and returns false when there is none.
func (s *Server) tenantFor(w http.ResponseWriter, r *http.Request, tokenTenant, bodyTenant string) (string, bool) {
	named := bodyTenant
	if named == "" {
		named = r.URL.Query().Get("tenant")
	}
	if tokenTenant != AdminTenant {
		if named != "" && named != tokenTenant {
			writeError(w, http.StatusForbidden, CodeForbidden, "/tenant", "this token may not act for tenant %q", named)
			return "", false
		}
		return tokenTenant, true
	}
	if named == "" {
		writeError(w, http.StatusBadRequest, CodeInvalid, "/tenant", "an admin token must name the tenant (body \"tenant\" or ?tenant=)")
		return "", false
	}
	return named, true
}

// unavailable reports whether err means a dependency (Kafka, Redis) could not
// be reached, which the API answers with 503.
func unavailable(err error) bool {
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, ErrUnavailable)
}

// ErrUnavailable may be wrapped by a Publisher or Endpoints implementation to
// say a dependency is down and nothing was accepted.
var ErrUnavailable = errors.New("api: dependency unavailable")
