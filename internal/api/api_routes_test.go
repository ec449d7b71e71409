package api_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/segmentio/encoding/json"

	"github.com/hookstream/hookstream/internal/api"
)

// TestUnknownRoutes: a path the API does not serve, or a method a route does
// not take, gets API.md's JSON error body, not ServeMux's plain text.
func TestUnknownRoutes(t *testing.T) {
	srv := httptest.NewServer(api.New(api.WithTokens(tokens)).Handler())
	t.Cleanup(srv.Close)
	tests := []struct {
		method, path string
		status       int
		code, allow  string
	}{
		{"GET", "/v1/nope", 404, api.CodeNotFound, ""},
		{"POST", "/", 404, api.CodeNotFound, ""},
		{"PUT", "/v1/events", 405, api.CodeMethodNotAllowed, "GET, HEAD, POST"},
		{"DELETE", "/v1/event-types", 405, api.CodeMethodNotAllowed, "GET, HEAD"},
		{"PUT", "/v1/endpoints/ep_1", 405, api.CodeMethodNotAllowed, "DELETE, GET, HEAD, PATCH"},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			req, err := http.NewRequest(tt.method, srv.URL+tt.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Authorization", "Bearer tok-acme")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			var body struct {
				Error struct{ Code, Message string }
			}
			if err := json.Unmarshal(b, &body); err != nil {
				t.Fatalf("body %q is not JSON: %v", b, err)
			}
			if resp.StatusCode != tt.status || body.Error.Code != tt.code || body.Error.Message == "" ||
				resp.Header.Get("Content-Type") != "application/json" || resp.Header.Get("Allow") != tt.allow {
				t.Fatalf("got %d %s, content-type %q, Allow %q; want %d %q, Allow %q",
					resp.StatusCode, b, resp.Header.Get("Content-Type"), resp.Header.Get("Allow"), tt.status, tt.code, tt.allow)
			}
		})
	}
}
