// Package sender makes one delivery attempt: sign the event, POST it to the
// endpoint, and classify what came back. Retries, ordering and offsets are
// the deliverer's; a Sender holds only the HTTP client, which pools
// keep-alive connections across all lanes and refuses private destinations
// at dial time (see internal/netguard).
package sender

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/textproto"
	"net/url"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/net/http/httpguts"

	"github.com/hookstream/hookstream/internal/netguard"
	"github.com/hookstream/hookstream/signature"
)

// Errors in Result.Err; check them with errors.Is. A destination refused by
// the address policy wraps netguard.ErrDenied.
var (
	// ErrTimeout: the connect timeout or the attempt's total timeout
	// expired (or the caller's context deadline did).
	ErrTimeout = errors.New("sender: timed out")
	// ErrRedirect: the receiver answered 3xx. Redirects are not followed:
	// the endpoint URL is what the customer registered and what the
	// destination check approved.
	ErrRedirect = errors.New("sender: redirect not followed")
	// ErrInvalidRequest: the request cannot be sent as configured: the URL
	// is not an absolute http(s) URL, a custom header is not a valid
	// header, or signing failed (no or malformed secret, empty event id).
	ErrInvalidRequest = errors.New("sender: invalid request")
)

// Outcome classifies an attempt for the deliverer.
type Outcome uint8

const (
	// Failed: anything but the outcomes below: a non-2xx answer (3xx
	// included), a timeout, a connection error, a cancelled context. The
	// zero value, so that a zero Result never reads as delivered. Retry it.
	Failed Outcome = iota
	// Delivered: the receiver answered 2xx.
	Delivered
	// Gone: the receiver answered 410; the endpoint should be disabled.
	Gone
	// Refused: nothing was sent, and sending the same request again cannot
	// succeed while the endpoint stays as it is: its destination resolved to
	// an address netguard refuses (Err wraps netguard.ErrDenied), or the
	// request is invalid (ErrInvalidRequest). The deliverer may treat it like
	// Failed (a host name may resolve elsewhere later) or dead-letter at once.
	Refused
)

// String returns a lower-case name, fit for logs and metric labels.
func (o Outcome) String() string {
	switch o {
	case Failed:
		return "failed"
	case Delivered:
		return "delivered"
	case Gone:
		return "gone"
	case Refused:
		return "refused"
	}
	return "Outcome(" + strconv.Itoa(int(o)) + ")"
}

// Request is one attempt to deliver one event to one endpoint.
type Request struct {
	URL  string // absolute http or https URL
	Body []byte // sent exactly as given: the canonical envelope bytes
	// EventID is webhook-id (X-<Brand>-Delivery): the same on every attempt,
	// so receivers can dedupe. EventType goes into X-<Brand>-Event.
	EventID, EventType string
	Scheme             signature.Scheme
	Secrets            []string // newest first, see signature.Signer.Sign
	// Headers are the endpoint's custom headers. Names the Sender sets
	// itself (content-type, user-agent, the signature headers of both
	// schemes, traceparent, tracestate) and framing headers (host,
	// content-length, transfer-encoding, connection, ...) are skipped.
	Headers map[string]string
	Timeout time.Duration // total timeout of this attempt; 0 = the Sender's
	// Traceparent and Tracestate, as carried in Kafka record headers, parent
	// the attempt's span when ctx carries no span.
	Traceparent, Tracestate string
}

// Result is what one attempt came to.
type Result struct {
	Outcome Outcome
	Status  int // HTTP status; 0 when there was no answer
	// Latency runs from sending the request until the response was read
	// (or the attempt failed).
	Latency time.Duration
	// RetryAfter is the receiver's Retry-After on a 429 or 503, in seconds
	// or as an HTTP date, capped by WithMaxRetryAfter; 0 when absent,
	// invalid or in the past.
	RetryAfter time.Duration
	// Body holds the first LoggedBody bytes of the response body, for the
	// attempts log; BodyTruncated says the response had more.
	Body          []byte
	BodyTruncated bool
	// Headers are the request headers sent, signatures and credentials
	// redacted, for the attempts log; nil when nothing was sent.
	Headers map[string]string
	// Err says why an attempt without an answer failed: ErrTimeout,
	// netguard.ErrDenied, ErrInvalidRequest, context.Canceled or a
	// transport error. For a 3xx it wraps ErrRedirect; for other answers it
	// is nil. Messages leave out the URL, which may hold credentials.
	Err error
}

// Sender makes delivery attempts. It is safe for concurrent use and meant to
// be shared by all lanes of a process, so that they share one connection
// pool.
type Sender struct {
	// Requests go to the transport directly: an http.Client adds only
	// redirect handling, which must stay off (a 3xx is the answer), and
	// copies every request's headers for it.
	transport     *http.Transport
	h1            *h1 // plain http:// destinations
	signer        *signature.Signer
	timeout       time.Duration
	maxBody       int64
	maxRetryAfter time.Duration
	userAgent     []string
	brand         string
	seedSignature string // the seed scheme's signature header, canonical
	tracer        trace.Tracer
	propagator    propagation.TextMapPropagator
}

// New returns a Sender. Besides what the options set, its transport uses no
// proxy (the destination check applies to the address dialed, so a proxy
// would defeat it), does not ask for compression, speaks HTTP/2 with
// servers that offer it over TLS, keeps idle connections for 90s and limits
// response headers to 64 KiB.
func New(opts ...Option) *Sender {
	c := config{
		connectTimeout: DefaultConnectTimeout,
		timeout:        DefaultTimeout,
		maxBody:        DefaultMaxResponseBody,
		userAgent:      defaultUserAgent(),
		maxIdlePerHost: DefaultMaxIdleConnsPerHost,
		maxRetryAfter:  DefaultMaxRetryAfter,
	}
	for _, o := range opts {
		o(&c)
	}
	if c.signer == nil {
		c.signer = signature.NewSigner()
	}
	if c.tracer == nil {
		c.tracer = otel.GetTracerProvider()
	}
	if c.propagator == nil {
		c.propagator = otel.GetTextMapPropagator()
	}

	dialer := &net.Dialer{Timeout: c.connectTimeout, KeepAlive: 30 * time.Second}
	if !c.allowPrivate {
		dialer.Control = netguard.Control
	}
	tr := &http.Transport{
		Proxy:                  nil,
		DialContext:            dialer.DialContext,
		TLSClientConfig:        c.tls,
		TLSHandshakeTimeout:    c.connectTimeout,
		ForceAttemptHTTP2:      true,
		MaxIdleConnsPerHost:    c.maxIdlePerHost,
		IdleConnTimeout:        90 * time.Second,
		DisableCompression:     true,
		MaxResponseHeaderBytes: 64 << 10,
	}
	return &Sender{
		transport:     tr,
		h1:            newH1(dialer, c.maxIdlePerHost, tr.IdleConnTimeout, tr.MaxResponseHeaderBytes),
		signer:        c.signer,
		timeout:       c.timeout,
		maxBody:       c.maxBody,
		maxRetryAfter: c.maxRetryAfter,
		userAgent:     []string{c.userAgent},
		brand:         c.signer.Brand(),
		seedSignature: textproto.CanonicalMIMEHeaderKey("X-" + c.signer.Brand() + "-Signature"),
		tracer:        c.tracer.Tracer("hookstream/sender"),
		propagator:    c.propagator,
	}
}

// CloseIdleConnections closes pooled connections not in use, e.g. on
// shutdown. The Sender stays usable.
func (s *Sender) CloseIdleConnections() {
	s.transport.CloseIdleConnections()
	s.h1.closeIdle()
}

var (
	contentTypeJSON = []string{"application/json"}
	spanStart       = []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindClient)}
)

// Send makes one attempt. It never panics on bad input and always returns
// a Result; see Outcome for how to read it. The request carries ctx's trace
// context (or Request.Traceparent's) in traceparent/tracestate, under a
// client span of its own.
func (s *Sender) Send(ctx context.Context, req Request) Result {
	if req.Traceparent != "" && !trace.SpanContextFromContext(ctx).IsValid() {
		ctx = s.propagator.Extract(ctx, traceCarrier{req.Traceparent, req.Tracestate})
	}
	ctx, span := s.tracer.Start(ctx, "webhook POST", spanStart...)
	res := s.send(ctx, req)
	if span.IsRecording() {
		span.SetAttributes(
			attribute.String("http.request.method", http.MethodPost),
			attribute.String("hookstream.event.id", req.EventID),
			attribute.String("hookstream.outcome", res.Outcome.String()),
		)
		if res.Status != 0 {
			span.SetAttributes(attribute.Int("http.response.status_code", res.Status))
		}
		if res.Outcome != Delivered {
			span.SetStatus(codes.Error, res.Outcome.String())
		}
		if res.Err != nil {
			span.RecordError(res.Err)
		}
	}
	span.End()
	return res
}

func (s *Sender) send(ctx context.Context, req Request) Result {
	timeout := s.timeout
	if req.Timeout > 0 {
		timeout = req.Timeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	hreq, err := s.newRequest(ctx, req)
	if err != nil {
		return Result{Outcome: Refused, Err: err}
	}

	sent := redactedHeaders(hreq.Header, s.seedSignature)
	start := time.Now()
	if addr, host, ok := h1Target(hreq); ok {
		resp, body, more, err := s.h1.roundTrip(ctx, hreq, addr, host, req.Body, s.maxBody)
		if err != nil {
			return Result{Outcome: transportOutcome(err), Latency: time.Since(start), Err: transportError(ctxError(ctx, err), timeout), Headers: sent}
		}
		res := s.classify(resp)
		res.Headers, res.Body, res.BodyTruncated = sent, body, more
		res.Latency = time.Since(start)
		return res
	}
	resp, err := s.transport.RoundTrip(hreq)
	if err != nil {
		return Result{Outcome: transportOutcome(err), Latency: time.Since(start), Err: transportError(err, timeout), Headers: sent}
	}
	res := s.classify(resp)
	res.Headers = sent
	// An error reading the body does not change the outcome: the status
	// has already answered; the connection is just not reused.
	res.Body, res.BodyTruncated = s.readBody(resp.Body)
	res.Latency = time.Since(start)
	return res
}

// classify reads the outcome, and Retry-After, from the response's status
// and headers.
func (s *Sender) classify(resp *http.Response) Result {
	res := Result{Status: resp.StatusCode}
	switch code := resp.StatusCode; {
	case code >= 200 && code <= 299:
		res.Outcome = Delivered
	case code == http.StatusGone:
		res.Outcome = Gone
	case code >= 300 && code <= 399:
		res.Err = fmt.Errorf("%w: %d to %q", ErrRedirect, code, resp.Header.Get("Location"))
	case code == http.StatusTooManyRequests || code == http.StatusServiceUnavailable:
		res.RetryAfter = retryAfter(resp.Header.Get("Retry-After"), time.Now(), s.maxRetryAfter)
	}
	return res
}

// ctxError is why ctx ended, when it did: h1 ends an attempt by moving the
// connection's deadline, which reads as a timeout even when ctx was
// cancelled.
func ctxError(ctx context.Context, err error) error {
	if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
		return fmt.Errorf("%w: %w", cerr, err)
	}
	return err
}

// newRequest builds the signed POST. Its errors wrap ErrInvalidRequest.
func (s *Sender) newRequest(ctx context.Context, req Request) (*http.Request, error) {
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, req.URL, bytes.NewReader(req.Body))
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // the URL itself may hold credentials
		}
		return nil, fmt.Errorf("%w: url: %w", ErrInvalidRequest, err)
	}
	if u := hreq.URL; u.Scheme != "http" && u.Scheme != "https" || u.Hostname() == "" {
		return nil, fmt.Errorf("%w: url: want an absolute http or https URL", ErrInvalidRequest)
	}
	h := hreq.Header
	for name, value := range req.Headers {
		name = textproto.CanonicalMIMEHeaderKey(name)
		if ReservedHeader(s.brand, name) {
			continue
		}
		if !httpguts.ValidHeaderFieldName(name) || !httpguts.ValidHeaderFieldValue(value) {
			return nil, fmt.Errorf("%w: custom header %q: invalid name or value", ErrInvalidRequest, name)
		}
		h[name] = []string{value}
	}
	h["Content-Type"] = contentTypeJSON
	h["User-Agent"] = s.userAgent
	if err := s.signer.Sign(h, req.Scheme, req.Secrets, req.EventID, req.EventType, time.Now(), req.Body); err != nil {
		return nil, fmt.Errorf("%w: signing: %w", ErrInvalidRequest, err)
	}
	s.propagator.Inject(ctx, propagation.HeaderCarrier(h))
	return hreq, nil
}

// ReservedHeader reports whether an endpoint's custom header name may not
// be set because the Sender sets it, or the HTTP connection owns it, with
// brand the seed scheme's brand. Endpoint validation and the Sender use
// this one list, so that a header accepted at creation is always sent.
// Both schemes' signature headers are reserved, so a receiver never sees a
// stray signature of the other scheme.
func ReservedHeader(brand, name string) bool {
	name = textproto.CanonicalMIMEHeaderKey(name)
	if reservedNames[name] {
		return true
	}
	for _, p := range []string{"Proxy-", "Webhook-", "Hookstream-", "X-Hookstream-", textproto.CanonicalMIMEHeaderKey("X-" + brand + "-")} {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// reservedNames are canonical (textproto).
var reservedNames = map[string]bool{
	"Content-Type": true, "User-Agent": true, "Traceparent": true, "Tracestate": true,
	"Host": true, "Content-Length": true, "Content-Encoding": true, "Transfer-Encoding": true,
	"Connection": true, "Keep-Alive": true, "Te": true, "Trailer": true, "Upgrade": true, "Expect": true,
}

func transportOutcome(err error) Outcome {
	if errors.Is(err, netguard.ErrDenied) {
		return Refused
	}
	return Failed
}

// transportError drops the *url.Error around err, whose message repeats the
// URL, and marks timeouts with ErrTimeout.
func transportError(err error, timeout time.Duration) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	if errors.Is(err, netguard.ErrDenied) || errors.Is(err, context.Canceled) {
		return err
	}
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout() {
		return fmt.Errorf("%w (limit %s): %w", ErrTimeout, timeout, err)
	}
	return err
}

// bodyBufs holds scratch buffers for the logged part of response bodies, so
// that only the bytes kept are allocated.
var bodyBufs = sync.Pool{New: func() any { return new([LoggedBody]byte) }}

// readBody reads up to maxBody bytes of body, returns a copy of the first
// LoggedBody of them, and whether there was more, and closes body. A body
// read to its end leaves the connection reusable.
func (s *Sender) readBody(body io.ReadCloser) ([]byte, bool) {
	defer body.Close()
	buf := bodyBufs.Get().(*[LoggedBody]byte)
	defer bodyBufs.Put(buf)
	keep := int(min(s.maxBody, LoggedBody))
	n, err := io.ReadFull(body, buf[:keep])
	var out []byte
	if n > 0 {
		out = bytes.Clone(buf[:n])
	}
	more := false
	if err == nil {
		// One byte past the cap, so that a body of exactly maxBody bytes
		// does not read as truncated.
		rest, _ := io.CopyN(io.Discard, body, max(s.maxBody-int64(keep), 0)+1)
		more = rest > 0
	}
	return out, more
}

// retryAfter parses a Retry-After value: delay seconds or an HTTP date.
func retryAfter(v string, now time.Time, limit time.Duration) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	var d time.Duration
	secs, err := strconv.ParseInt(v, 10, 64)
	switch {
	case err == nil && secs > int64(limit/time.Second), errors.Is(err, strconv.ErrRange) && v[0] != '-':
		return limit
	case err == nil:
		d = time.Duration(secs) * time.Second
	default:
		if t, err := http.ParseTime(v); err == nil {
			d = t.Sub(now)
		}
	}
	return min(max(d, 0), limit)
}

// traceCarrier reads Request.Traceparent/Tracestate for the propagator.
type traceCarrier struct{ parent, state string }

func (c traceCarrier) Get(key string) string {
	switch key {
	case "traceparent":
		return c.parent
	case "tracestate":
		return c.state
	}
	return ""
}

func (traceCarrier) Set(string, string) {}

func (traceCarrier) Keys() []string { return []string{"traceparent", "tracestate"} }

func defaultUserAgent() string {
	v := "dev"
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		v = bi.Main.Version
	}
	return "Hookstream/" + v
}
