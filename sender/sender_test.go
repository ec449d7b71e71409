package sender

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/hookstream/hookstream/internal/netguard"
	"github.com/hookstream/hookstream/signature"
)

// body is a canonical envelope with bytes a careless sender might alter:
// non-ASCII, escapes, a trailing newline.
var body = []byte(`{"id":"evt_d5de32be887a9b82fe75ed48","event":"agent.created","timestamp":"2026-03-04T12:00:00+00:00","data":{"name":"Zoë \u00e9\"x\"","n":1.50}}` + "\n")

const eventID = "evt_d5de32be887a9b82fe75ed48"

func newSecret(t testing.TB) string {
	t.Helper()
	s, err := signature.NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// received is one request as a receiver saw it.
type received struct {
	header http.Header
	body   []byte
	proto  int
}

// receiver is a real HTTP server that records requests and answers with
// handler (or 204 when handler is nil).
type receiver struct {
	*httptest.Server
	mu   sync.Mutex
	reqs []received
	hits atomic.Int32
}

func newReceiver(t testing.TB, handler http.HandlerFunc) *receiver {
	t.Helper()
	r := &receiver{}
	r.Server = httptest.NewServer(r.handler(handler))
	t.Cleanup(r.Close)
	return r
}

func (rc *receiver) handler(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		rc.hits.Add(1)
		b, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		rc.reqs = append(rc.reqs, received{header: r.Header.Clone(), body: b, proto: r.ProtoMajor})
		rc.mu.Unlock()
		if next == nil {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		next(w, r)
	}
}

func (rc *receiver) last(t *testing.T) received {
	t.Helper()
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if len(rc.reqs) == 0 {
		t.Fatal("receiver got no request")
	}
	return rc.reqs[len(rc.reqs)-1]
}

func TestSendHeadersBodySignature(t *testing.T) {
	oldSecret, newSecretS := newSecret(t), newSecret(t)
	custom := map[string]string{
		"Authorization":          "Bearer abc",
		"x-tenant-tag":           "blue",
		"content-type":           "text/plain",
		"webhook-signature":      "v1,forged",
		"WEBHOOK-ID":             "evt_forged",
		"X-Hookstream-Signature": "sha256=forged",
		"user-agent":             "evil",
		"traceparent":            "00-11111111111111111111111111111111-2222222222222222-01",
		"Host":                   "evil.example",
		"Content-Length":         "1",
	}
	tests := []struct {
		scheme       signature.Scheme
		sigHeader    string
		absentHeader string
	}{
		{signature.Standard, "Webhook-Signature", "X-Hookstream-Signature"},
		{signature.Seed, "X-Hookstream-Signature", "Webhook-Signature"},
	}
	for _, tt := range tests {
		t.Run(tt.scheme.String(), func(t *testing.T) {
			rc := newReceiver(t, nil)
			s := New(WithAllowPrivate(true), WithUserAgent("Hookstream/test"))
			var stamps []string
			for attempt := range 2 {
				before := time.Now().Unix()
				res := s.Send(context.Background(), Request{
					URL: rc.URL + "/hook?x=1", Body: body, EventID: eventID, EventType: "agent.created",
					Scheme: tt.scheme, Secrets: []string{newSecretS, oldSecret}, Headers: custom,
				})
				after := time.Now().Unix()
				if res.Outcome != Delivered || res.Status != http.StatusNoContent || res.Err != nil {
					t.Fatalf("attempt %d: %+v, want Delivered 204", attempt, res)
				}
				got := rc.last(t)
				if !bytes.Equal(got.body, body) {
					t.Fatalf("body = %q, want %q", got.body, body)
				}
				h := got.header
				for name, want := range map[string]string{
					"Content-Type":  "application/json",
					"User-Agent":    "Hookstream/test",
					"Authorization": "Bearer abc",
					"X-Tenant-Tag":  "blue",
				} {
					if v := h.Values(name); len(v) != 1 || v[0] != want {
						t.Errorf("%s = %q, want exactly %q", name, v, want)
					}
				}
				if v := h.Values(tt.sigHeader); len(v) != 1 || strings.Contains(v[0], "forged") {
					t.Errorf("%s = %q, want one real signature", tt.sigHeader, v)
				}
				if v := h.Values(tt.absentHeader); len(v) != 0 {
					t.Errorf("%s = %q, want absent (custom header must not add the other scheme's)", tt.absentHeader, v)
				}
				if v := h.Values("Traceparent"); len(v) != 0 {
					t.Errorf("traceparent = %q, want none: no trace context and custom headers may not set it", v)
				}
				// Receivers holding either secret accept it while it rotates
				// (the seed scheme signs with the newest only).
				if err := signature.Verify(h, got.body, []string{newSecretS}); err != nil {
					t.Errorf("Verify(newest secret): %v", err)
				}
				if tt.scheme == signature.Standard {
					if err := signature.Verify(h, got.body, []string{oldSecret}); err != nil {
						t.Errorf("Verify(older secret): %v", err)
					}
				}
				if err := signature.Verify(h, got.body, []string{newSecret(t)}); !errors.Is(err, signature.ErrInvalidSignature) {
					t.Errorf("Verify(unrelated secret) = %v, want ErrInvalidSignature", err)
				}
				id, ts := h.Get("Webhook-Id"), h.Get("Webhook-Timestamp")
				if tt.scheme == signature.Seed {
					id, ts = h.Get("X-Hookstream-Delivery"), h.Get("X-Hookstream-Timestamp")
					if ev := h.Get("X-Hookstream-Event"); ev != "agent.created" {
						t.Errorf("X-Hookstream-Event = %q", ev)
					}
				}
				if id != eventID {
					t.Errorf("attempt %d: id header = %q, want the event id %q", attempt, id, eventID)
				}
				sec, err := strconv.ParseInt(ts, 10, 64)
				if err != nil || sec < before || sec > after {
					t.Errorf("timestamp = %q, want the attempt time in [%d, %d]", ts, before, after)
				}
				stamps = append(stamps, ts)
			}
			if len(stamps) != 2 {
				t.Fatalf("got %d attempts", len(stamps))
			}
		})
	}
}

func TestSendTraceContext(t *testing.T) {
	const parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	rc := newReceiver(t, nil)
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	s := New(WithAllowPrivate(true), WithTracerProvider(tp), WithPropagator(propagation.TraceContext{}))

	res := s.Send(context.Background(), Request{
		URL: rc.URL, Body: body, EventID: eventID, EventType: "agent.created",
		Secrets: []string{newSecret(t)}, Traceparent: parent, Tracestate: "vendor=x",
	})
	if res.Outcome != Delivered {
		t.Fatalf("%+v", res)
	}
	h := rc.last(t).header
	spans := exp.GetSpans()
	if len(spans) != 1 {
		t.Fatalf("%d spans, want 1 client span", len(spans))
	}
	sp := spans[0]
	if sp.SpanKind != trace.SpanKindClient || sp.Parent.SpanID().String() != "00f067aa0ba902b7" ||
		sp.SpanContext.TraceID().String() != "4bf92f3577b34da6a3ce929d0e0e4736" {
		t.Errorf("span kind %v parent %v trace %v, want a client span under the given traceparent",
			sp.SpanKind, sp.Parent.SpanID(), sp.SpanContext.TraceID())
	}
	want := "00-4bf92f3577b34da6a3ce929d0e0e4736-" + sp.SpanContext.SpanID().String() + "-01"
	if got := h.Get("Traceparent"); got != want {
		t.Errorf("traceparent = %q, want %q (the client span)", got, want)
	}
	if got := h.Get("Tracestate"); got != "vendor=x" {
		t.Errorf("tracestate = %q, want vendor=x", got)
	}

	// A span in ctx wins over Request.Traceparent.
	ctx, outer := tp.Tracer("test").Start(context.Background(), "outer")
	s.Send(ctx, Request{URL: rc.URL, Body: body, EventID: eventID, Secrets: []string{newSecret(t)}, Traceparent: parent})
	outer.End()
	if got := rc.last(t).header.Get("Traceparent"); !strings.HasPrefix(got, "00-"+outer.SpanContext().TraceID().String()+"-") {
		t.Errorf("traceparent = %q, want the trace of the span in ctx %s", got, outer.SpanContext().TraceID())
	}
}

func TestSendClassification(t *testing.T) {
	tests := []struct {
		status  int
		want    Outcome
		wantErr error
	}{
		{200, Delivered, nil},
		{201, Delivered, nil},
		{202, Delivered, nil},
		{204, Delivered, nil},
		{299, Delivered, nil},
		{300, Failed, ErrRedirect},
		{304, Failed, ErrRedirect},
		{400, Failed, nil},
		{401, Failed, nil},
		{404, Failed, nil},
		{409, Failed, nil},
		{410, Gone, nil},
		{413, Failed, nil},
		{422, Failed, nil},
		{429, Failed, nil},
		{500, Failed, nil},
		{502, Failed, nil},
		{503, Failed, nil},
		{504, Failed, nil},
	}
	rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request) {
		code, _ := strconv.Atoi(r.URL.Query().Get("status"))
		w.WriteHeader(code)
		if code != http.StatusNoContent && code != http.StatusNotModified {
			io.WriteString(w, "answer "+strconv.Itoa(code))
		}
	})
	s := New(WithAllowPrivate(true))
	for _, tt := range tests {
		res := s.Send(context.Background(), Request{
			URL: rc.URL + "/?status=" + strconv.Itoa(tt.status), Body: body, EventID: eventID, Secrets: []string{newSecret(t)},
		})
		if res.Outcome != tt.want || res.Status != tt.status {
			t.Errorf("status %d: outcome %v status %d, want %v", tt.status, res.Outcome, res.Status, tt.want)
		}
		if tt.wantErr == nil && res.Err != nil || tt.wantErr != nil && !errors.Is(res.Err, tt.wantErr) {
			t.Errorf("status %d: err %v, want %v", tt.status, res.Err, tt.wantErr)
		}
		wantBody := "answer " + strconv.Itoa(tt.status)
		if tt.status == 204 || tt.status == 304 {
			wantBody = ""
		}
		if string(res.Body) != wantBody {
			t.Errorf("status %d: body %q, want %q", tt.status, res.Body, wantBody)
		}
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Now()
	date := func(d time.Duration) string { return now.Add(d).UTC().Format(http.TimeFormat) }
	tests := []struct {
		status int
		header string
		max    time.Duration // 0 = default
		want   time.Duration // for dates: want within 2s below
		date   bool
	}{
		{429, "120", 0, 120 * time.Second, false},
		{503, "120", 0, 120 * time.Second, false},
		{429, " 7 ", 0, 7 * time.Second, false},
		{429, "0", 0, 0, false},
		{429, "-5", 0, 0, false},
		{429, "soon", 0, 0, false},
		{429, "", 0, 0, false},
		{429, "7200", 0, time.Hour, false},
		{503, "99999999999999999999", 0, time.Hour, false},
		{429, "3600", 10 * time.Minute, 10 * time.Minute, false},
		{500, "120", 0, 0, false}, // only 429 and 503 carry it
		{200, "120", 0, 0, false},
		{429, date(90 * time.Second), 0, 90 * time.Second, true},
		{503, date(90 * time.Second), 0, 90 * time.Second, true},
		{503, date(-time.Hour), 0, 0, false},
		{429, date(3 * time.Hour), 0, time.Hour, false},
	}
	rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request) {
		if v := r.Header.Get("X-Retry-After"); v != "" {
			w.Header().Set("Retry-After", v)
		}
		code, _ := strconv.Atoi(r.Header.Get("X-Status"))
		w.WriteHeader(code)
	})
	for _, tt := range tests {
		s := New(WithAllowPrivate(true), WithMaxRetryAfter(tt.max))
		res := s.Send(context.Background(), Request{
			URL: rc.URL, Body: body, EventID: eventID, Secrets: []string{newSecret(t)},
			Headers: map[string]string{"X-Status": strconv.Itoa(tt.status), "X-Retry-After": tt.header},
		})
		if res.Status != tt.status {
			t.Fatalf("status %d, want %d", res.Status, tt.status)
		}
		ok := res.RetryAfter == tt.want
		if tt.date { // an HTTP date has whole seconds, and time passes
			ok = res.RetryAfter <= tt.want && res.RetryAfter > tt.want-3*time.Second
		}
		if !ok {
			t.Errorf("%d Retry-After %q (max %v): got %v, want %v", tt.status, tt.header, tt.max, res.RetryAfter, tt.want)
		}
	}
}

func TestRedirectNotFollowed(t *testing.T) {
	target := newReceiver(t, nil)
	for _, code := range []int{301, 302, 303, 307, 308} {
		redirector := newReceiver(t, func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, target.URL+"/moved", code)
		})
		res := New(WithAllowPrivate(true)).Send(context.Background(), Request{
			URL: redirector.URL, Body: body, EventID: eventID, Secrets: []string{newSecret(t)},
		})
		if res.Outcome != Failed || res.Status != code || !errors.Is(res.Err, ErrRedirect) {
			t.Errorf("%d: %+v, want Failed with ErrRedirect", code, res)
		}
		if res.Err != nil && !strings.Contains(res.Err.Error(), "/moved") {
			t.Errorf("%d: err %q does not name the location", code, res.Err)
		}
	}
	if n := target.hits.Load(); n != 0 {
		t.Fatalf("redirect target hit %d times, want 0", n)
	}
}

// TestResponseBodyCapped: a receiver streams an endless body. Send must
// return after reading at most WithMaxResponseBody, keep only the first
// LoggedBody bytes, and not buffer the stream.
func TestResponseBodyCapped(t *testing.T) {
	chunk := bytes.Repeat([]byte("0123456789abcdef"), 4096) // 64 KiB
	var written atomic.Int64
	handlerDone := make(chan struct{}, 1)
	rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request) {
		defer func() { handlerDone <- struct{}{} }()
		w.WriteHeader(http.StatusOK)
		for written.Load() < 10<<30 { // stop at 10 GiB even if nobody hangs up
			n, err := w.Write(chunk)
			written.Add(int64(n))
			if err != nil {
				return
			}
		}
	})
	s := New(WithAllowPrivate(true), WithTimeout(time.Minute))
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	res := s.Send(context.Background(), Request{URL: rc.URL, Body: body, EventID: eventID, Secrets: []string{newSecret(t)}})
	runtime.ReadMemStats(&after)
	if res.Outcome != Delivered || res.Err != nil {
		t.Fatalf("%+v, want Delivered", res)
	}
	if !bytes.Equal(res.Body, chunk[:LoggedBody]) {
		t.Fatalf("Result.Body has %d bytes, want the first %d of the stream", len(res.Body), LoggedBody)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 4<<20 {
		t.Errorf("Send allocated %d bytes for a streamed body, want well under 4 MiB", alloc)
	}
	<-handlerDone // the write failed: the client hung up
	t.Logf("Send allocated %d bytes; receiver wrote %d bytes before the client hung up", after.TotalAlloc-before.TotalAlloc, written.Load())
	// Had Send read the stream until its one-minute timeout, the receiver
	// would have written tens of GiB; what it got out is its first 64 KiB
	// plus what the kernel's socket buffers held.
	if n := written.Load(); n > 256<<20 {
		t.Errorf("receiver wrote %d bytes before the client hung up, want the client to stop early", n)
	}
}

// TestTimeoutBlackHole: a server that accepts and never answers.
func TestTimeoutBlackHole(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		var conns []net.Conn // held open, never read or answered
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	url := "http://" + ln.Addr().String() + "/"
	const limit = 300 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	tests := []struct {
		name string
		s    *Sender
		req  time.Duration
	}{
		{"WithTimeout", New(WithAllowPrivate(true), WithTimeout(limit)), 0},
		{"Request.Timeout", New(WithAllowPrivate(true), WithTimeout(time.Hour)), limit},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := tt.s.Send(ctx, Request{URL: url, Body: body, EventID: eventID, Secrets: []string{newSecret(t)}, Timeout: tt.req})
			if res.Outcome != Failed || res.Status != 0 || !errors.Is(res.Err, ErrTimeout) {
				t.Fatalf("%+v, want Failed with ErrTimeout", res)
			}
			if ctx.Err() != nil {
				t.Fatal("the test's own 30s deadline ended Send, not the attempt's timeout")
			}
			if res.Latency < limit {
				t.Errorf("latency %v, want at least the timeout %v", res.Latency, limit)
			}
		})
	}

	// A cancelled context is not a timeout: the deliverer is shutting down.
	cctx, ccancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, ccancel)
	res := New(WithAllowPrivate(true)).Send(cctx, Request{URL: url, Body: body, EventID: eventID, Secrets: []string{newSecret(t)}})
	if res.Outcome != Failed || !errors.Is(res.Err, context.Canceled) || errors.Is(res.Err, ErrTimeout) {
		t.Fatalf("cancelled: %+v, want Failed with context.Canceled, not ErrTimeout", res)
	}
}

func TestSSRFRefused(t *testing.T) {
	rc := newReceiver(t, nil)
	_, port, _ := net.SplitHostPort(rc.Listener.Addr().String())

	v6 := &receiver{}
	v6.Server = httptest.NewUnstartedServer(v6.handler(nil))
	ln6, err := net.Listen("tcp", "[::1]:0")
	if err == nil {
		v6.Listener.Close()
		v6.Listener = ln6
		v6.Start()
		t.Cleanup(v6.Close)
	}

	urls := []string{
		"http://127.0.0.1:" + port + "/",
		"http://localhost:" + port + "/", // a host name resolving to loopback
		"http://[::ffff:127.0.0.1]:" + port + "/",
		"http://169.254.169.254/latest/meta-data/",
		"http://[fd00:ec2::254]/",
		"http://10.0.0.1/",
		"http://0.0.0.0:" + port + "/",
	}
	if ln6 != nil {
		urls = append(urls, v6.URL+"/")
	} else {
		t.Logf("no IPv6 loopback (%v); [::1] covered by netguard tests only", err)
	}
	s := New()
	for _, u := range urls {
		res := s.Send(context.Background(), Request{URL: u, Body: body, EventID: eventID, Secrets: []string{newSecret(t)}})
		if res.Outcome != Refused || !errors.Is(res.Err, netguard.ErrDenied) || res.Status != 0 {
			t.Errorf("%s: %v (%v), want Refused with netguard.ErrDenied", u, res.Outcome, res.Err)
		}
		if res.Err != nil && strings.Contains(res.Err.Error(), "http://") {
			t.Errorf("%s: error %q repeats the URL", u, res.Err)
		}
	}
	if n := rc.hits.Load() + v6.hits.Load(); n != 0 {
		t.Fatalf("receivers hit %d times with private destinations refused", n)
	}

	allowed := New(WithAllowPrivate(true))
	for _, u := range []string{rc.URL, "http://localhost:" + port} {
		if res := allowed.Send(context.Background(), Request{URL: u, Body: body, EventID: eventID, Secrets: []string{newSecret(t)}}); res.Outcome != Delivered {
			t.Errorf("WithAllowPrivate(true) %s: %+v, want Delivered", u, res)
		}
	}
	if n := rc.hits.Load(); n != 2 {
		t.Fatalf("receiver hit %d times with private destinations allowed, want 2", n)
	}
}

// TestKeepAlive: sequential attempts to one receiver reuse one connection,
// including when the answer has a body longer than what is logged.
func TestKeepAlive(t *testing.T) {
	answer := strings.Repeat("x", 2*LoggedBody)
	rc := &receiver{}
	rc.Server = httptest.NewUnstartedServer(rc.handler(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusInternalServerError)
		io.WriteString(w, answer)
	}))
	var opened atomic.Int32
	rc.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			opened.Add(1)
		}
	}
	rc.Start()
	t.Cleanup(rc.Close)
	s := New(WithAllowPrivate(true))
	for i := range 100 {
		res := s.Send(context.Background(), Request{URL: rc.URL, Body: body, EventID: eventID, Secrets: []string{newSecret(t)}})
		if res.Status != 500 || len(res.Body) != LoggedBody {
			t.Fatalf("send %d: %+v", i, res)
		}
	}
	if n := opened.Load(); n > 2 {
		t.Fatalf("100 sequential sends opened %d connections, want at most 2", n)
	}
	if n := rc.hits.Load(); n != 100 {
		t.Fatalf("receiver hit %d times, want 100", n)
	}
}

func TestInvalidRequest(t *testing.T) {
	rc := newReceiver(t, nil)
	good := Request{URL: rc.URL, Body: body, EventID: eventID, EventType: "agent.created", Secrets: []string{newSecret(t)}}
	tests := []struct {
		name   string
		modify func(*Request)
		want   error
	}{
		{"ftp url", func(r *Request) { r.URL = "ftp://example.com/x" }, ErrInvalidRequest},
		{"relative url", func(r *Request) { r.URL = "/hook" }, ErrInvalidRequest},
		{"no host", func(r *Request) { r.URL = "http:///hook" }, ErrInvalidRequest},
		{"unparsable url", func(r *Request) { r.URL = "http://a b.example/%zz" }, ErrInvalidRequest},
		{"no secrets", func(r *Request) { r.Secrets = nil }, signature.ErrInvalidSecret},
		{"bad secret", func(r *Request) { r.Secrets = []string{"whsec_short"} }, signature.ErrInvalidSecret},
		{"no event id", func(r *Request) { r.EventID = "" }, ErrInvalidRequest},
		{"unknown scheme", func(r *Request) { r.Scheme = 9 }, signature.ErrInvalidScheme},
		{"header value with CRLF", func(r *Request) { r.Headers = map[string]string{"X-A": "1\r\nX-Injected: 1"} }, ErrInvalidRequest},
		{"header name with space", func(r *Request) { r.Headers = map[string]string{"X A": "1"} }, ErrInvalidRequest},
	}
	s := New(WithAllowPrivate(true))
	for _, tt := range tests {
		req := good
		tt.modify(&req)
		res := s.Send(context.Background(), req)
		if res.Outcome != Refused || !errors.Is(res.Err, ErrInvalidRequest) || !errors.Is(res.Err, tt.want) {
			t.Errorf("%s: %v (%v), want Refused wrapping ErrInvalidRequest and %v", tt.name, res.Outcome, res.Err, tt.want)
		}
		if res.Err != nil && strings.Contains(res.Err.Error(), "whsec_short") {
			t.Errorf("%s: error %q shows a secret", tt.name, res.Err)
		}
	}
	if n := rc.hits.Load(); n != 0 {
		t.Fatalf("receiver hit %d times by invalid requests", n)
	}
	if res := s.Send(context.Background(), good); res.Outcome != Delivered {
		t.Fatalf("the unmodified request: %+v, want Delivered", res)
	}
}

func TestHTTPS(t *testing.T) {
	rc := &receiver{}
	rc.Server = httptest.NewUnstartedServer(rc.handler(nil))
	rc.EnableHTTP2 = true
	rc.Config.ErrorLog = log.New(io.Discard, "", 0) // the untrusted-certificate case below
	rc.StartTLS()
	t.Cleanup(rc.Close)
	roots := x509.NewCertPool()
	roots.AddCert(rc.Certificate())

	secret := newSecret(t)
	s := New(WithAllowPrivate(true), WithTLSConfig(&tls.Config{RootCAs: roots}))
	res := s.Send(context.Background(), Request{URL: rc.URL, Body: body, EventID: eventID, Secrets: []string{secret}})
	if res.Outcome != Delivered {
		t.Fatalf("%+v, want Delivered", res)
	}
	got := rc.last(t)
	if got.proto != 2 {
		t.Errorf("receiver saw HTTP/%d, want HTTP/2 over TLS", got.proto)
	}
	if err := signature.Verify(got.header, got.body, []string{secret}); err != nil {
		t.Errorf("Verify: %v", err)
	}

	// Without the receiver's CA the certificate is rejected.
	res = New(WithAllowPrivate(true)).Send(context.Background(), Request{URL: rc.URL, Body: body, EventID: eventID, Secrets: []string{secret}})
	if res.Outcome != Failed || res.Err == nil {
		t.Fatalf("untrusted certificate: %+v, want Failed", res)
	}
}

func TestRetryAfterParse(t *testing.T) {
	now := time.Date(2026, 3, 4, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		v    string
		want time.Duration
	}{
		{"", 0},
		{"30", 30 * time.Second},
		{"3600", time.Hour},
		{"3601", time.Hour},
		{"-1", 0},
		{"1.5", 0},
		{"99999999999999999999", time.Hour},
		{"-99999999999999999999", 0},
		{"Wed, 04 Mar 2026 12:01:30 GMT", 90 * time.Second},
		{"Wednesday, 04-Mar-26 12:01:30 GMT", 90 * time.Second}, // RFC 850
		{"Wed Mar  4 12:01:30 2026", 90 * time.Second},          // asctime
		{"Wed, 04 Mar 2026 11:59:00 GMT", 0},
		{"Thu, 05 Mar 2026 12:00:00 GMT", time.Hour},
		{"tomorrow", 0},
	}
	for _, tt := range tests {
		if got := retryAfter(tt.v, now, time.Hour); got != tt.want {
			t.Errorf("retryAfter(%q) = %v, want %v", tt.v, got, tt.want)
		}
	}
}

func TestOutcomeString(t *testing.T) {
	for o, want := range map[Outcome]string{Failed: "failed", Delivered: "delivered", Gone: "gone", Refused: "refused", 7: "Outcome(7)"} {
		if got := o.String(); got != want {
			t.Errorf("%d.String() = %q, want %q", o, got, want)
		}
	}
	var zero Result
	if zero.Outcome == Delivered {
		t.Fatal("a zero Result reads as Delivered")
	}
}
