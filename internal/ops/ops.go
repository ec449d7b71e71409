// Package ops serves a role's operational HTTP endpoints: /healthz
// (liveness), /readyz (readiness: Kafka and Redis reachable) and /metrics,
// plus whatever API the role mounts beside them. Requests for no route, or
// with a method a route does not take, get a JSON error body in the API's
// shape: {"error": {"code": "not_found", "message": "..."}}.
package ops

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/segmentio/encoding/json"
	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/net/netutil"
)

// Check reports whether one dependency is usable; nil means ready.
type Check func(ctx context.Context) error

// KafkaCheck is ready when some broker of cl answers.
func KafkaCheck(cl *kgo.Client) Check { return cl.Ping }

// RedisCheck is ready when Redis answers PING.
func RedisCheck(c redis.UniversalClient) Check {
	return func(ctx context.Context) error { return c.Ping(ctx).Err() }
}

// readyTimeout bounds one /readyz: probes (kubelet's default timeout is 1 s,
// often raised) need an answer, not a hang on a black-holed dependency.
const readyTimeout = 2 * time.Second

type cfg struct {
	checks   map[string]Check
	metrics  http.Handler
	handlers map[string]http.Handler
	grace    time.Duration
	limits   Limits
	// terseReady keeps check errors out of /readyz.
	terseReady bool
}

// Limits bound what one client can hold of a server. Zero fields take
// DefaultLimits' values.
type Limits struct {
	// ReadTimeout bounds reading a whole request, body included, so a
	// client trickling its body cannot hold a connection.
	ReadTimeout time.Duration
	// WriteTimeout bounds a request from its headers to the end of its
	// response; it must cover ReadTimeout and the slowest handler.
	WriteTimeout time.Duration
	// IdleTimeout closes a keep-alive connection no request uses.
	IdleTimeout time.Duration
	// MaxConns caps open connections; more wait to be accepted.
	MaxConns int
}

// DefaultLimits suit health, readiness and metrics scrapes.
var DefaultLimits = Limits{ReadTimeout: 30 * time.Second, WriteTimeout: 60 * time.Second, IdleTimeout: 60 * time.Second, MaxConns: 1024}

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

// WithLimits sets the server's timeouts and connection limit.
func WithLimits(l Limits) Option { return func(o *cfg) { o.limits = l } }

// WithTerseReadiness answers /readyz with "unavailable" for a failing check
// instead of its error, for a server that faces the public (the API):
// errors name internal addresses.
func WithTerseReadiness() Option { return func(o *cfg) { o.terseReady = true } }

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
	l := c.limits
	s.cfg.limits = Limits{
		ReadTimeout:  cmp.Or(l.ReadTimeout, DefaultLimits.ReadTimeout),
		WriteTimeout: cmp.Or(l.WriteTimeout, DefaultLimits.WriteTimeout),
		IdleTimeout:  cmp.Or(l.IdleTimeout, DefaultLimits.IdleTimeout),
		MaxConns:     cmp.Or(l.MaxConns, DefaultLimits.MaxConns),
	}
	l = s.cfg.limits
	s.srv = &http.Server{
		Handler:           JSONErrors(mux),
		ReadHeaderTimeout: min(10*time.Second, l.ReadTimeout),
		ReadTimeout:       l.ReadTimeout,
		WriteTimeout:      l.WriteTimeout,
		IdleTimeout:       l.IdleTimeout,
	}
	return s
}

// ready runs every check at once, so that a dependency that hangs until the
// deadline does not make the others look down too.
func (s *Server) ready(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
	defer cancel()
	var mu sync.Mutex
	var wg sync.WaitGroup
	status := map[string]string{}
	code := http.StatusOK
	for name, c := range s.cfg.checks {
		wg.Go(func() {
			msg := "ok"
			err := c(ctx)
			switch {
			case err != nil && s.cfg.terseReady:
				msg = "unavailable"
			case err != nil:
				msg = err.Error()
			}
			mu.Lock()
			defer mu.Unlock()
			status[name] = msg
			if err != nil {
				code = http.StatusServiceUnavailable
			}
		})
	}
	wg.Wait()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(status)
}

// JSONErrors serves mux, answering a request that mux has no route for (404)
// or whose method no route takes (405, with Allow) with a JSON error body in
// the API's shape instead of ServeMux's plain text.
func JSONErrors(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h, pattern := mux.Handler(r)
		if pattern != "" { // a route, or a redirect to one
			mux.ServeHTTP(w, r)
			return
		}
		// ServeMux's own answer says which of the two it is.
		probe := &statusProbe{header: http.Header{}}
		h.ServeHTTP(probe, r)
		if probe.status == http.StatusMethodNotAllowed {
			allow := probe.header.Get("Allow")
			w.Header().Set("Allow", allow)
			writeError(w, http.StatusMethodNotAllowed, "method_not_allowed",
				fmt.Sprintf("%s is not allowed on %s; allowed: %s", r.Method, r.URL.Path, allow))
			return
		}
		writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("no route for %s %s", r.Method, r.URL.Path))
	})
}

// writeError writes {"error": {"code": code, "message": msg}}.
func writeError(w http.ResponseWriter, status int, code, msg string) {
	var b struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	b.Error.Code, b.Error.Message = code, msg
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(&b)
}

// statusProbe records the status and headers a handler writes and drops the
// body.
type statusProbe struct {
	header http.Header
	status int
}

func (p *statusProbe) Header() http.Header { return p.header }

func (p *statusProbe) Write(b []byte) (int, error) {
	if p.status == 0 {
		p.status = http.StatusOK
	}
	return len(b), nil
}

func (p *statusProbe) WriteHeader(code int) {
	if p.status == 0 {
		p.status = code
	}
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
	s.ln = netutil.LimitListener(ln, s.cfg.limits.MaxConns)
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
