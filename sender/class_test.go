package sender

import (
	"context"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/hookstream/hookstream/signature"
)

func TestClass(t *testing.T) {
	ok := newReceiver(t, nil)
	fail := newReceiver(t, func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(500) })
	redirect := newReceiver(t, func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/x", http.StatusFound) })
	slow := newReceiver(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	})
	tlsSrv := httptest.NewUnstartedServer(http.NotFoundHandler())
	tlsSrv.Config.ErrorLog = log.New(io.Discard, "", 0)
	tlsSrv.StartTLS()
	t.Cleanup(tlsSrv.Close)
	// A port that was just free: nothing listens, so the dial is refused.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := "http://" + l.Addr().String()
	l.Close()

	tests := []struct {
		name    string
		s       *Sender
		url     string
		want    string
		outcome Outcome
	}{
		{"2xx", New(WithAllowPrivate(true)), ok.URL, ClassNone, Delivered},
		{"500", New(WithAllowPrivate(true)), fail.URL, ClassHTTPStatus, Failed},
		{"redirect", New(WithAllowPrivate(true)), redirect.URL, ClassRedirect, Failed},
		{"timeout", New(WithAllowPrivate(true), WithTimeout(200*time.Millisecond)), slow.URL, ClassTimeout, Failed},
		{"refused connection", New(WithAllowPrivate(true)), refused, ClassConnectionRefused, Failed},
		{"untrusted certificate", New(WithAllowPrivate(true)), tlsSrv.URL, ClassTLS, Failed},
		{"private destination", New(), ok.URL, ClassRefusedDestination, Refused},
		{"invalid url", New(WithAllowPrivate(true)), "ftp://127.0.0.1/", ClassInvalidRequest, Refused},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := tt.s.Send(context.Background(), Request{URL: tt.url, Body: body, EventID: eventID, Secrets: []string{newSecret(t)}})
			if got := Class(res); got != tt.want || res.Outcome != tt.outcome {
				t.Errorf("Class = %q, outcome %s (err %v), want %q, %s", got, res.Outcome, res.Err, tt.want, tt.outcome)
			}
		})
	}
}

// TestResultHeadersRedacted: the attempt's headers as logged hold the
// signatures and every credential-like header (an endpoint's X-Api-Key
// too, which its own page masks) redacted, and the rest as sent.
func TestResultHeadersRedacted(t *testing.T) {
	rc := newReceiver(t, nil)
	secret := newSecret(t)
	for _, scheme := range []signature.Scheme{signature.Standard, signature.Seed} {
		res := New(WithAllowPrivate(true)).Send(context.Background(), Request{
			URL: rc.URL, Body: body, EventID: eventID, EventType: "agent.created", Scheme: scheme,
			Secrets: []string{secret}, Headers: map[string]string{"Authorization": "Bearer s3cret", "X-Api-Key": "sk_live_1", "X-Auth-Token": "t0k", "X-Team": "blue"},
		})
		got := rc.last(t)
		if len(res.Headers) == 0 {
			t.Fatalf("scheme %v: no headers in Result", scheme)
		}
		for k, v := range res.Headers {
			sent := got.header.Get(k)
			if strings.Contains(strings.ToLower(k), "signature") || k == "Authorization" || k == "X-Api-Key" || k == "X-Auth-Token" {
				if v != Redacted || sent == "" || sent == Redacted {
					t.Errorf("scheme %v: header %s logged %q (sent %q), want %q", scheme, k, v, sent, Redacted)
				}
				continue
			}
			if v != sent {
				t.Errorf("scheme %v: header %s logged %q, sent %q", scheme, k, v, sent)
			}
		}
		if res.Headers["X-Api-Key"] != Redacted || res.Headers["X-Auth-Token"] != Redacted {
			t.Errorf("scheme %v: credential headers logged as %v", scheme, res.Headers)
		}
		if res.Headers["X-Team"] != "blue" {
			t.Errorf("scheme %v: custom header not logged: %v", scheme, res.Headers)
		}
	}
}

func TestBodyTruncated(t *testing.T) {
	tests := []struct {
		size int
		want bool
	}{{0, false}, {LoggedBody, false}, {LoggedBody + 1, true}, {10 * LoggedBody, true}}
	for _, tt := range tests {
		rc := newReceiver(t, func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte(strings.Repeat("x", tt.size))) })
		res := New(WithAllowPrivate(true)).Send(context.Background(), Request{URL: rc.URL, Body: body, EventID: eventID, Secrets: []string{newSecret(t)}})
		if res.BodyTruncated != tt.want || len(res.Body) != min(tt.size, LoggedBody) {
			t.Errorf("body of %d bytes: truncated %v, kept %d, want %v, %d", tt.size, res.BodyTruncated, len(res.Body), tt.want, min(tt.size, LoggedBody))
		}
	}
}
