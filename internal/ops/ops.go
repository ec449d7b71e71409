// Package ops serves a role's operational HTTP endpoints: /healthz
// (liveness), /readyz (readiness: Kafka and Redis reachable) and /metrics,
// plus whatever API the role mounts beside them.
package ops

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/segmentio/encoding/json"
)

// Check reports whether one dependency is usable; nil means ready.
type Check func(ctx context.Context) error

type cfg struct {
	checks   map[string]Check
	metrics  http.Handler
	handlers map[string]http.Handler
	grace    time.Duration
}

// Option configures a Server.
type Option func(*cfg)

// WithCheck adds a readiness check reported under name.
func WithCheck(name string, c Check) Option { return func(o *cfg) { o.checks[name] = c } }

// WithMetrics serves h on /metrics (default: 404).
func WithMetrics(h http.Handler) Option { return func(o *cfg) { o.metrics = h } }

// WithHandler mounts h on pattern (http.ServeMux syntax).
func WithHandler(pattern string, h http.Handler) Option {
	return func(o *cfg) { o.handlers[pattern] = h }
}

// WithShutdownGrace bounds how long in-flight requests may finish after the
// context ends (default 10s).
func WithShutdownGrace(d time.Duration) Option { return func(o *cfg) { o.grace = d } }

// Server is the role's HTTP server.
type Server struct {
	addr string
	srv  *http.Server
	cfg  cfg
	ln   net.Listener
}

// New returns a server for addr; it listens when Listen or Run is called.
func New(addr string, opts ...Option) *Server {
	c := cfg{checks: map[string]Check{}, handlers: map[string]http.Handler{}, grace: 10 * time.Second}
	for _, o := range opts {
		o(&c)
	}
	s := &Server{addr: addr, cfg: c}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"status":"ok"}`))
	})
	mux.HandleFunc("GET /readyz", s.ready)
	if c.metrics != nil {
		mux.Handle("GET /metrics", c.metrics)
	}
	for p, h := range c.handlers {
		mux.Handle(p, h)
	}
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	return s
}

func (s *Server) ready(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	status := map[string]string{}
	code := http.StatusOK
	for name, c := range s.cfg.checks {
		if err := c(ctx); err != nil {
			status[name] = err.Error()
			code = http.StatusServiceUnavailable
		} else {
			status[name] = "ok"
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(status)
}

// Listen binds the address now, so callers learn the real port (for ":0")
// and bind errors before anything else starts.
func (s *Server) Listen() error {
	if s.ln != nil {
		return nil
	}
	ln, err := net.Listen("tcp", s.addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", s.addr, err)
	}
	s.ln = ln
	return nil
}

// Addr is the bound address after Listen, else the configured one.
func (s *Server) Addr() string {
	if s.ln != nil {
		return s.ln.Addr().String()
	}
	return s.addr
}

// Run serves until ctx ends, then lets in-flight requests finish within the
// grace period.
func (s *Server) Run(ctx context.Context) error {
	if err := s.Listen(); err != nil {
		return err
	}
	errc := make(chan error, 1)
	go func() { errc <- s.srv.Serve(s.ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("http server: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), s.cfg.grace)
	defer cancel()
	if err := s.srv.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("http shutdown: %w", err)
	}
	return nil
}
