// Package demo is the receiver `hookstream dev --demo` runs: a local HTTP
// server that verifies every webhook's signature with signature.Verify, as a
// customer's receiver would, and prints one line per webhook, so a newcomer
// sees the whole pipeline work (and sees a bad signature refused).
package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/hookstream/hookstream/envelope"
	"github.com/hookstream/hookstream/signature"
)

// Defaults of a Receiver.
const (
	DefaultAddr = "127.0.0.1:8081"
	// Path is where the receiver expects webhooks; URL() includes it.
	Path = "/webhooks"
)

// Endpoint is an endpoint that may have sent a webhook.
type Endpoint struct {
	ID      string
	Secrets []string // the secrets that sign now, newest first
}

// Endpoints returns the endpoints whose URL is url, the URL a request arrived
// on ("http://<host header><path and query>"). The receiver verifies each
// request against their secrets: the endpoint whose secret matches is the one
// that sent it. An error (the store is unreachable) is answered with 503, so
// the sender retries.
type Endpoints func(ctx context.Context, url string) ([]Endpoint, error)

type cfg struct {
	addr    string
	brand   string
	maxBody int64
}

// Option configures a Receiver.
type Option func(*cfg)

// WithAddr sets the listen address (default DefaultAddr).
func WithAddr(addr string) Option { return func(c *cfg) { c.addr = addr } }

// WithBrand sets the <Brand> of the seed scheme's X-<Brand>-Signature
// headers (default signature.DefaultBrand); it must match the deliverer's.
func WithBrand(brand string) Option { return func(c *cfg) { c.brand = brand } }

// WithMaxBody caps the request body read (default envelope.DefaultMaxSize,
// the largest event the pipeline carries).
func WithMaxBody(n int64) Option { return func(c *cfg) { c.maxBody = n } }

// Receiver verifies and prints webhooks. It is an http.Handler; Run serves it
// on its own address.
type Receiver struct {
	cfg       cfg
	endpoints Endpoints

	mu  sync.Mutex // serialises lines on out
	out io.Writer

	ln  net.Listener
	srv *http.Server
}

// New returns a receiver printing to out and looking endpoints up with eps.
func New(out io.Writer, eps Endpoints, opts ...Option) *Receiver {
	c := cfg{addr: DefaultAddr, brand: signature.DefaultBrand, maxBody: envelope.DefaultMaxSize}
	for _, o := range opts {
		o(&c)
	}
	r := &Receiver{cfg: c, endpoints: eps, out: out}
	r.srv = &http.Server{Handler: r, ReadHeaderTimeout: 10 * time.Second}
	return r
}

// Listen binds the address now, so the caller learns bind errors and the
// real port (for ":0") before creating an endpoint that points here.
func (r *Receiver) Listen() error {
	if r.ln != nil {
		return nil
	}
	ln, err := net.Listen("tcp", r.cfg.addr)
	if err != nil {
		return fmt.Errorf("demo receiver: listen on %s: %w", r.cfg.addr, err)
	}
	r.ln = ln
	return nil
}

// Addr is the bound address after Listen, else the configured one.
func (r *Receiver) Addr() string {
	if r.ln != nil {
		return r.ln.Addr().String()
	}
	return r.cfg.addr
}

// URL is the endpoint URL that reaches this receiver.
func (r *Receiver) URL() string { return "http://" + r.Addr() + Path }

// Run serves until ctx ends, then lets requests in flight finish for a few
// seconds.
func (r *Receiver) Run(ctx context.Context) error {
	if err := r.Listen(); err != nil {
		return err
	}
	errc := make(chan error, 1)
	go func() { errc <- r.srv.Serve(r.ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("demo receiver: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := r.srv.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("demo receiver: shutdown: %w", err)
	}
	return nil
}

// ServeHTTP verifies one webhook, prints its line and answers 200 when the
// signature is valid, 401 when it is not.
func (r *Receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "the hookstream demo receiver takes webhooks: POST "+Path, http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(io.LimitReader(req.Body, r.cfg.maxBody+1))
	if err != nil {
		http.Error(w, "reading body: "+err.Error(), http.StatusBadRequest)
		return
	}
	l := line{event: "?", id: "?", endpoint: "?"}
	l.describe(req.Header, body, r.cfg.brand)
	if int64(len(body)) > r.cfg.maxBody {
		l.sig, l.reason = "unchecked", fmt.Sprintf("body over %d bytes", r.cfg.maxBody)
		r.answer(w, l, http.StatusRequestEntityTooLarge)
		return
	}
	url := "http://" + req.Host + req.URL.RequestURI()
	eps, err := r.endpoints(req.Context(), url)
	if err != nil {
		l.sig, l.reason = "unchecked", "looking up the endpoint: "+err.Error()
		r.answer(w, l, http.StatusServiceUnavailable)
		return
	}
	if len(eps) == 0 {
		l.sig, l.reason = "unchecked", "no endpoint has URL "+url
		r.answer(w, l, http.StatusUnauthorized)
		return
	}
	if len(eps) == 1 {
		l.endpoint = eps[0].ID
	}
	var failure error
	for _, ep := range eps {
		err := signature.Verify(req.Header, body, ep.Secrets, signature.WithBrand(r.cfg.brand))
		if err == nil {
			l.endpoint, l.ok, l.sig = ep.ID, true, "valid"
			r.answer(w, l, http.StatusOK)
			return
		}
		// A matching signature with a bad timestamp says more than another
		// endpoint's mismatch.
		if failure == nil || errors.Is(err, signature.ErrTimestampOutOfRange) {
			failure = err
			if len(eps) > 1 && errors.Is(err, signature.ErrTimestampOutOfRange) {
				l.endpoint = ep.ID
			}
		}
	}
	l.sig, l.reason = sigWord(failure), failure.Error()
	r.answer(w, l, http.StatusUnauthorized)
}

func (r *Receiver) answer(w http.ResponseWriter, l line, status int) {
	r.mu.Lock()
	_, _ = io.WriteString(r.out, l.String())
	r.mu.Unlock()
	if status == http.StatusOK {
		_, _ = io.WriteString(w, "ok\n")
		return
	}
	http.Error(w, l.reason, status)
}

func sigWord(err error) string {
	switch {
	case errors.Is(err, signature.ErrInvalidSignature):
		return "invalid"
	case errors.Is(err, signature.ErrMissingHeaders):
		return "missing"
	case errors.Is(err, signature.ErrTimestampOutOfRange):
		return "stale"
	}
	return "error"
}

// line is what the receiver prints for one webhook.
type line struct {
	ok                  bool
	event, id, endpoint string
	sig, scheme, reason string
	trace               string
}

// describe fills what the request says about itself: event type and id from
// the envelope, else from the headers; the scheme; the trace id.
func (l *line) describe(h http.Header, body []byte, brand string) {
	if e, err := envelope.Decode(body, len(body)); err == nil {
		l.event, l.id = e.Event, e.ID
	} else {
		if v := h.Get("X-" + brand + "-Event"); v != "" {
			l.event = v
		}
		if v := h.Get(signature.HeaderID); v != "" {
			l.id = v
		} else if v := h.Get("X-" + brand + "-Delivery"); v != "" {
			l.id = v
		}
	}
	switch {
	case h.Get(signature.HeaderSignature) != "":
		l.scheme = "standard"
	case h.Get("X-"+brand+"-Signature") != "":
		l.scheme = "seed"
	}
	// traceparent: version-traceid-spanid-flags.
	if parts := strings.Split(h.Get("Traceparent"), "-"); len(parts) == 4 && len(parts[1]) == 32 {
		l.trace = parts[1]
	}
}

func (l line) String() string {
	var b strings.Builder
	mark := "✗"
	if l.ok {
		mark = "✓"
	}
	fmt.Fprintf(&b, "webhook %s %s %s → %s sig=%s", mark, printable(l.event), printable(l.id), printable(l.endpoint), l.sig)
	if l.scheme != "" {
		b.WriteString(" scheme=" + l.scheme)
	}
	if l.trace != "" {
		b.WriteString(" trace=" + printable(l.trace))
	}
	if l.reason != "" {
		fmt.Fprintf(&b, " reason=%q", l.reason)
	}
	b.WriteByte('\n')
	return b.String()
}

// printable keeps a field from a request on one line of the terminal: at
// most 128 bytes, control characters and spaces replaced.
func printable(s string) string {
	if len(s) > 128 {
		s = s[:128] + "…"
	}
	return strings.Map(func(r rune) rune {
		if r <= ' ' || r == 0x7f {
			return '_'
		}
		return r
	}, s)
}
