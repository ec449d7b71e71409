package demo_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/hookstream/hookstream/internal/demo"
	"github.com/hookstream/hookstream/internal/testenv"
	"github.com/hookstream/hookstream/signature"
)

func newSecret(t *testing.T) string {
	t.Helper()
	s, err := signature.NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

const body = `{"id":"evt_0123456789abcdef01234567","event":"agent.created","timestamp":"2026-03-04T12:00:00+00:00","data":{"agent_id":"a1"}}`

func TestReceiver(t *testing.T) {
	secret, other, old := newSecret(t), newSecret(t), newSecret(t)
	signer := signature.NewSigner()
	sign := func(scheme signature.Scheme, secrets []string, at time.Time) func(h http.Header) {
		return func(h http.Header) {
			if err := signer.Sign(h, scheme, secrets, "evt_0123456789abcdef01234567", "agent.created", at, []byte(body)); err != nil {
				t.Fatal(err)
			}
		}
	}
	tests := []struct {
		name      string
		endpoints []demo.Endpoint // nil with lookupErr set: the lookup fails
		lookupErr error
		path      string
		headers   func(h http.Header)
		status    int
		line      string // the printed line starts with this
		reason    string // and contains this
	}{
		{
			name:      "standard signature",
			endpoints: []demo.Endpoint{{ID: "ep_1", Secrets: []string{secret}}},
			headers:   sign(signature.Standard, []string{secret}, time.Now()),
			status:    http.StatusOK,
			line:      "webhook ✓ agent.created evt_0123456789abcdef01234567 → ep_1 sig=valid scheme=standard",
		},
		{
			name:      "seed signature",
			endpoints: []demo.Endpoint{{ID: "ep_1", Secrets: []string{secret}}},
			headers:   sign(signature.Seed, []string{secret}, time.Now()),
			status:    http.StatusOK,
			line:      "webhook ✓ agent.created evt_0123456789abcdef01234567 → ep_1 sig=valid scheme=seed",
		},
		{
			name:      "signed with the old secret during a rotation",
			endpoints: []demo.Endpoint{{ID: "ep_1", Secrets: []string{secret, old}}},
			headers:   sign(signature.Standard, []string{old}, time.Now()),
			status:    http.StatusOK,
			line:      "webhook ✓ agent.created evt_0123456789abcdef01234567 → ep_1 sig=valid",
		},
		{
			name:      "the second of two endpoints on the URL",
			endpoints: []demo.Endpoint{{ID: "ep_1", Secrets: []string{other}}, {ID: "ep_2", Secrets: []string{secret}}},
			headers:   sign(signature.Standard, []string{secret}, time.Now()),
			status:    http.StatusOK,
			line:      "webhook ✓ agent.created evt_0123456789abcdef01234567 → ep_2 sig=valid",
		},
		{
			name:      "wrong secret",
			endpoints: []demo.Endpoint{{ID: "ep_1", Secrets: []string{secret}}},
			headers:   sign(signature.Standard, []string{other}, time.Now()),
			status:    http.StatusUnauthorized,
			line:      "webhook ✗ agent.created evt_0123456789abcdef01234567 → ep_1 sig=invalid scheme=standard",
			reason:    signature.ErrInvalidSignature.Error(),
		},
		{
			name:      "tampered signature header",
			endpoints: []demo.Endpoint{{ID: "ep_1", Secrets: []string{secret}}},
			headers: func(h http.Header) {
				sign(signature.Standard, []string{secret}, time.Now())(h)
				h.Set(signature.HeaderSignature, "v1,"+strings.Repeat("A", 43)+"=")
			},
			status: http.StatusUnauthorized,
			line:   "webhook ✗ agent.created evt_0123456789abcdef01234567 → ep_1 sig=invalid",
		},
		{
			name:      "no signature headers",
			endpoints: []demo.Endpoint{{ID: "ep_1", Secrets: []string{secret}}},
			headers:   func(http.Header) {},
			status:    http.StatusUnauthorized,
			line:      "webhook ✗ agent.created evt_0123456789abcdef01234567 → ep_1 sig=missing",
		},
		{
			name:      "replayed an hour later",
			endpoints: []demo.Endpoint{{ID: "ep_1", Secrets: []string{secret}}},
			headers:   sign(signature.Standard, []string{secret}, time.Now().Add(-time.Hour)),
			status:    http.StatusUnauthorized,
			line:      "webhook ✗ agent.created evt_0123456789abcdef01234567 → ep_1 sig=stale",
		},
		{
			name:    "no endpoint with this URL",
			path:    "/elsewhere",
			headers: sign(signature.Standard, []string{secret}, time.Now()),
			status:  http.StatusUnauthorized,
			line:    "webhook ✗ agent.created evt_0123456789abcdef01234567 → ? sig=unchecked",
			reason:  "no endpoint has URL http://",
		},
		{
			name:      "store unreachable",
			lookupErr: errors.New("redis down"),
			headers:   sign(signature.Standard, []string{secret}, time.Now()),
			status:    http.StatusServiceUnavailable,
			line:      "webhook ✗ agent.created evt_0123456789abcdef01234567 → ? sig=unchecked",
			reason:    "redis down",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out testenv.Output
			var gotURL string
			var srv *httptest.Server
			recv := demo.New(&out, func(_ context.Context, url string) ([]demo.Endpoint, error) {
				gotURL = url
				if tt.lookupErr != nil {
					return nil, tt.lookupErr
				}
				if url != srv.URL+demo.Path {
					return nil, nil
				}
				return tt.endpoints, nil
			})
			srv = httptest.NewServer(recv)
			defer srv.Close()
			path := demo.Path
			if tt.path != "" {
				path = tt.path
			}
			req, err := http.NewRequest(http.MethodPost, srv.URL+path, strings.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			tt.headers(req.Header)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.status {
				t.Errorf("status %d, want %d", resp.StatusCode, tt.status)
			}
			if want := srv.URL + path; gotURL != want {
				t.Errorf("looked up URL %q, want %q", gotURL, want)
			}
			lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
			if len(lines) != 1 {
				t.Fatalf("printed %d lines, want 1: %q", len(lines), out.String())
			}
			if !strings.HasPrefix(lines[0], tt.line) {
				t.Errorf("line\n %q\nwant prefix\n %q", lines[0], tt.line)
			}
			if tt.reason != "" && !strings.Contains(lines[0], tt.reason) {
				t.Errorf("line %q does not give the reason %q", lines[0], tt.reason)
			}
		})
	}
}

// A request that is not an envelope still gets one line, described from
// its headers, and a tracing header shows up as the trace id.
func TestReceiverDescribesFromHeaders(t *testing.T) {
	secret := newSecret(t)
	var out testenv.Output
	srv := httptest.NewServer(demo.New(&out, func(context.Context, string) ([]demo.Endpoint, error) {
		return []demo.Endpoint{{ID: "ep_1", Secrets: []string{secret}}}, nil
	}))
	defer srv.Close()
	raw := []byte("not json")
	req, _ := http.NewRequest(http.MethodPost, srv.URL+demo.Path, bytes.NewReader(raw))
	if err := signature.NewSigner().Sign(req.Header, signature.Seed, []string{secret}, "evt_x", "call.started", time.Now(), raw); err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	want := "webhook ✓ call.started evt_x → ep_1 sig=valid scheme=seed trace=0af7651916cd43dd8448eb211c80319c\n"
	if resp.StatusCode != http.StatusOK || out.String() != want {
		t.Errorf("status %d, line %q; want 200, %q", resp.StatusCode, out.String(), want)
	}
}

func TestReceiverRun(t *testing.T) {
	secret := newSecret(t)
	var out testenv.Output
	recv := demo.New(&out, func(context.Context, string) ([]demo.Endpoint, error) {
		return []demo.Endpoint{{ID: "ep_1", Secrets: []string{secret}}}, nil
	}, demo.WithAddr("127.0.0.1:0"), demo.WithMaxBody(64))
	if err := recv.Listen(); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(recv.URL(), "http://127.0.0.1:") || strings.HasSuffix(recv.Addr(), ":0") {
		t.Fatalf("URL %q after Listen: want the bound port", recv.URL())
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- recv.Run(ctx) }()

	post := func(b string) int {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, recv.URL(), strings.NewReader(b))
		if err := signature.NewSigner().Sign(req.Header, signature.Standard, []string{secret}, "evt_1", "agent.created", time.Now(), []byte(b)); err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := post("{}"); got != http.StatusOK {
		t.Errorf("small body: status %d, want 200", got)
	}
	if got := post(strings.Repeat("x", 65)); got != http.StatusRequestEntityTooLarge {
		t.Errorf("body over the limit: status %d, want 413", got)
	}
	resp, err := http.Get(recv.URL())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET: status %d, want 405", resp.StatusCode)
	}
	if n := strings.Count(out.String(), "\n"); n != 2 {
		t.Errorf("printed %d lines for 2 webhooks (and a GET): %q", n, out.String())
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
}
