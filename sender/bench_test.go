package sender

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
)

func newBenchServer(b *testing.B) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusNoContent)
	}))
	b.Cleanup(srv.Close)
	return srv
}

// BenchmarkSend is one signed attempt (Standard Webhooks, one secret) to a
// local receiver, over a kept-alive connection. Allocations include the
// receiver's, which BenchmarkBarePost shares.
func BenchmarkSend(b *testing.B) {
	srv := newBenchServer(b)
	s := New(WithAllowPrivate(true))
	req := Request{
		URL: srv.URL + "/hook", Body: body, EventID: eventID, EventType: "agent.created",
		Secrets: []string{newSecret(b)}, Headers: map[string]string{"Authorization": "Bearer abc"},
	}
	ctx := context.Background()
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if res := s.Send(ctx, req); res.Outcome != Delivered {
			b.Fatalf("%+v", res)
		}
	}
}

// BenchmarkBarePost is the floor BenchmarkSend is measured against: a plain
// http.Client POST of the same body to the same kind of receiver.
func BenchmarkBarePost(b *testing.B) {
	srv := newBenchServer(b)
	client := &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		resp, err := client.Post(srv.URL+"/hook", "application/json", bytes.NewReader(body))
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusNoContent {
			b.Fatalf("status %d", resp.StatusCode)
		}
	}
}
