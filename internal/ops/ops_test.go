package ops_test

import (
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/segmentio/encoding/json"

	"github.com/hookstream/hookstream/internal/ops"
	"github.com/hookstream/hookstream/internal/testenv"
)

// serve runs s until the test ends and returns its base URL.
func serve(t *testing.T, s *ops.Server) string {
	t.Helper()
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	testenv.Run(t, s)
	return "http://" + s.Addr()
}

func get(t *testing.T, method, url string) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, b
}

// TestReadyz checks /readyz against a real broker and a real redis-server,
// stopping either, both or neither: ready only when both answer, and the
// body says which one is down.
func TestReadyz(t *testing.T) {
	tests := []struct {
		name                 string
		stopKafka, stopRedis bool
		status               int
	}{
		{"both up", false, false, 200},
		{"kafka down", true, false, 503},
		{"redis down", false, true, 503},
		{"both down", true, true, 503},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := testenv.StartKafka(t)
			r := testenv.StartRedis(t)
			url := serve(t, ops.New("127.0.0.1:0",
				ops.WithCheck("kafka", ops.KafkaCheck(k.Client(t))),
				ops.WithCheck("redis", ops.RedisCheck(r.Client)),
			))
			if status, _, b := get(t, "GET", url+"/readyz"); status != 200 {
				t.Fatalf("before stopping anything: %d %s", status, b)
			}
			if tt.stopKafka {
				k.Server.Close()
			}
			if tt.stopRedis {
				r.Stop()
			}
			start := time.Now()
			status, _, b := get(t, "GET", url+"/readyz")
			if d := time.Since(start); d > 3*time.Second {
				t.Errorf("/readyz took %v", d)
			}
			var body map[string]string
			if err := json.Unmarshal(b, &body); err != nil {
				t.Fatalf("body %q: %v", b, err)
			}
			if status != tt.status || len(body) != 2 ||
				(body["kafka"] == "ok") == tt.stopKafka || (body["redis"] == "ok") == tt.stopRedis {
				t.Fatalf("got %d %v; want %d with kafka down %v, redis down %v", status, body, tt.status, tt.stopKafka, tt.stopRedis)
			}
		})
	}
}

// TestJSONErrors: routes are served as mounted; anything else gets a JSON
// error body, with Allow on a 405.
func TestJSONErrors(t *testing.T) {
	url := serve(t, ops.New("127.0.0.1:0", ops.WithHandler("POST /v1/things/{id}", http.HandlerFunc(
		func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, r.PathValue("id")) }))))
	tests := []struct {
		method, path string
		status       int
		body         string // exact, or "" for a JSON error
		code, allow  string
	}{
		{"GET", "/healthz", 200, `{"status":"ok"}`, "", ""},
		{"POST", "/v1/things/7", 200, "7", "", ""},
		{"GET", "/nope", 404, "", "not_found", ""},
		{"GET", "/metrics", 404, "", "not_found", ""}, // no WithMetrics
		{"POST", "/healthz", 405, "", "method_not_allowed", "GET, HEAD"},
		{"GET", "/v1/things/7", 405, "", "method_not_allowed", "POST"},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			status, h, b := get(t, tt.method, url+tt.path)
			if status != tt.status || h.Get("Allow") != tt.allow {
				t.Fatalf("got %d Allow %q %s; want %d Allow %q", status, h.Get("Allow"), b, tt.status, tt.allow)
			}
			if tt.body != "" {
				if string(b) != tt.body {
					t.Fatalf("body %q, want %q", b, tt.body)
				}
				return
			}
			var e struct {
				Error struct{ Code, Message string }
			}
			if err := json.Unmarshal(b, &e); err != nil || e.Error.Code != tt.code || e.Error.Message == "" ||
				h.Get("Content-Type") != "application/json" {
				t.Fatalf("body %s (content-type %q): want a JSON error %q", b, h.Get("Content-Type"), tt.code)
			}
		})
	}
}
