package api_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/segmentio/encoding/json"

	"github.com/hookstream/hookstream/deliverer"
	"github.com/hookstream/hookstream/internal/api"
	"github.com/hookstream/hookstream/internal/docs"
	"github.com/hookstream/hookstream/schemas"
	"github.com/hookstream/hookstream/signature"
)

// spec is the parsed OpenAPI document: paths → method → operation.
type spec struct {
	Paths map[string]map[string]json.RawMessage `json:"paths"`
}

type operation struct {
	RequestBody *struct {
		Content map[string]struct{ Schema json.RawMessage } `json:"content"`
	} `json:"requestBody"`
	Responses map[string]json.RawMessage `json:"responses"`
}

func loadSpec(t *testing.T) spec {
	t.Helper()
	var s spec
	if err := json.Unmarshal(api.OpenAPI(), &s); err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	return s
}

// TestOpenAPICoversRoutes: every route the API serves has an operation in
// openapi.json and every operation there is a route.
func TestOpenAPICoversRoutes(t *testing.T) {
	var served, described []string
	for pattern := range api.New().Routes() {
		served = append(served, pattern)
	}
	for path, ops := range loadSpec(t).Paths {
		for method := range ops {
			if method == "parameters" {
				continue
			}
			described = append(described, strings.ToUpper(method)+" "+path)
		}
	}
	for _, p := range served {
		if !slices.Contains(described, p) {
			t.Errorf("route %q has no entry in internal/api/openapi.json (paths.%q.%s)", p, p[strings.Index(p, " ")+1:], strings.ToLower(p[:strings.Index(p, " ")]))
		}
	}
	for _, d := range described {
		if !slices.Contains(served, d) {
			t.Errorf("internal/api/openapi.json describes %q, which the API does not serve", d)
		}
	}
}

// TestOpenAPIServed: the document is served without a token, byte for byte.
func TestOpenAPIServed(t *testing.T) {
	srv := httptest.NewServer(api.New(api.WithTokens(tokens)).Handler())
	t.Cleanup(srv.Close)
	r := epDo(t, "GET", srv.URL+"/v1/openapi.json", "", "")
	if r.status != 200 || !bytes.Equal(r.body, api.OpenAPI()) {
		t.Fatalf("got %d, %d bytes; want 200 and the embedded document", r.status, len(r.body))
	}
	var head struct{ OpenAPI string }
	r.decode(t, &head)
	if head.OpenAPI != "3.1.0" {
		t.Fatalf("openapi %q, want 3.1.0", head.OpenAPI)
	}
}

// checker validates real requests and responses of the API tests against
// openapi.json: OpenAPI 3.1 schemas are JSON Schema 2020-12, so the
// catalog's JSON Schema library compiles them straight from the document.
type checker struct {
	spec  spec
	comp  *jsonschema.Compiler
	mu    sync.Mutex
	cache map[string]*jsonschema.Schema
}

var (
	specCheckerOnce sync.Once
	specChecker     *checker
	specCheckerErr  error
)

func openAPIChecker(t *testing.T) *checker {
	t.Helper()
	specCheckerOnce.Do(func() {
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(api.OpenAPI()))
		if err != nil {
			specCheckerErr = err
			return
		}
		c := &checker{comp: jsonschema.NewCompiler(), cache: map[string]*jsonschema.Schema{}}
		if err := c.comp.AddResource("openapi.json", doc); err != nil {
			specCheckerErr = err
			return
		}
		if err := json.Unmarshal(api.OpenAPI(), &c.spec); err != nil {
			specCheckerErr = err
			return
		}
		specChecker = c
	})
	if specCheckerErr != nil {
		t.Fatalf("openapi.json: %v", specCheckerErr)
	}
	return specChecker
}

// route finds the spec path template that matches a request path.
func (c *checker) route(path string) (string, bool) {
	parts := strings.Split(path, "/")
	for tmpl := range c.spec.Paths {
		tp := strings.Split(tmpl, "/")
		if len(tp) != len(parts) {
			continue
		}
		ok := true
		for i := range tp {
			if tp[i] != parts[i] && !(strings.HasPrefix(tp[i], "{") && parts[i] != "") {
				ok = false
				break
			}
		}
		if ok {
			return tmpl, true
		}
	}
	return "", false
}

func (c *checker) schema(ptr string) (*jsonschema.Schema, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s, ok := c.cache[ptr]; ok {
		return s, nil
	}
	s, err := c.comp.Compile("openapi.json#" + ptr)
	if err != nil {
		return nil, err
	}
	c.cache[ptr] = s
	return s, nil
}

func validJSON(s *jsonschema.Schema, body []byte) error {
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(body))
	if err != nil {
		return err
	}
	return s.Validate(v)
}

// escape makes a JSON pointer token of a path such as /v1/endpoints/{id}.
func escape(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "~", "~0"), "/", "~1")
}

// check reports how the exchange departs from the spec: an undescribed
// route or status, a response body its schema rejects, or a request body
// its schema rejects when the API accepted it (rejected bodies are the
// error tests' point).
func (c *checker) check(method, path string, reqBody []byte, status int, respBody []byte) error {
	tmpl, ok := c.route(path)
	if !ok {
		return fmt.Errorf("path %s is not in openapi.json", path)
	}
	m := strings.ToLower(method)
	raw, ok := c.spec.Paths[tmpl][m]
	if !ok {
		if status == http.StatusMethodNotAllowed {
			return nil
		}
		return fmt.Errorf("%s %s is not in openapi.json", method, tmpl)
	}
	var op operation
	if err := json.Unmarshal(raw, &op); err != nil {
		return err
	}
	base := "/paths/" + escape(tmpl) + "/" + m
	code := strconv.Itoa(status)
	resp, ok := op.Responses[code]
	if !ok {
		return fmt.Errorf("%s %s: status %d is not among its responses in openapi.json", method, tmpl, status)
	}
	respPtr := base + "/responses/" + code
	// A shared response (components/responses) is a $ref, which JSON
	// pointers do not follow.
	var shared struct {
		Ref string `json:"$ref"`
	}
	if err := json.Unmarshal(resp, &shared); err == nil && strings.HasPrefix(shared.Ref, "#") {
		respPtr = shared.Ref[1:]
	}
	if len(respBody) > 0 {
		s, err := c.schema(respPtr + "/content/application~1json/schema")
		if err != nil {
			return fmt.Errorf("%s %s %d: response schema: %w", method, tmpl, status, err)
		}
		if err := validJSON(s, respBody); err != nil {
			return fmt.Errorf("%s %s %d: response %s: %w", method, tmpl, status, respBody, err)
		}
	}
	if status < 300 && len(reqBody) > 0 && op.RequestBody != nil {
		s, err := c.schema(base + "/requestBody/content/application~1json/schema")
		if err != nil {
			return fmt.Errorf("%s %s: request schema: %w", method, tmpl, err)
		}
		if err := validJSON(s, reqBody); err != nil {
			return fmt.Errorf("%s %s: accepted request %s: %w", method, tmpl, reqBody, err)
		}
	}
	return nil
}

// checkExchange fails t when a real exchange departs from openapi.json.
func checkExchange(t *testing.T, req *http.Request, reqBody string, status int, respBody []byte) {
	t.Helper()
	if err := openAPIChecker(t).check(req.Method, req.URL.Path, []byte(reqBody), status, respBody); err != nil {
		t.Errorf("openapi: %v", err)
	}
}

// TestOpenAPICheckerRejects: the checker that the API tests run catches
// replies and accepted requests the spec does not allow.
func TestOpenAPICheckerRejects(t *testing.T) {
	c := openAPIChecker(t)
	tests := []struct {
		name, method, path, req string
		status                  int
		resp                    string
	}{
		{"undescribed path", "GET", "/v1/nope", "", 200, `{}`},
		{"undescribed status", "GET", "/v1/event-types", "", 418, `{}`},
		{"error body without message", "GET", "/v1/endpoints/ep_1", "", 404, `{"error":{"code":"not_found"}}`},
		{"unknown error code", "GET", "/v1/endpoints/ep_1", "", 404, `{"error":{"code":"gone","message":"x"}}`},
		{"endpoint missing fields", "GET", "/v1/endpoints/ep_1", "", 200, `{"id":"ep_1"}`},
		{"accepted request with unknown field", "POST", "/v1/endpoints", `{"url":"https://x","events":["a"],"color":1}`, 201,
			`{"id":"ep_1","tenant":"t","url":"https://x","events":["a"],"signature":"standard","ordering":"strict","rate_limit":0,"disabled":false,"version":1,"created_at":"2026-01-01T00:00:00Z","updated_at":"2026-01-01T00:00:00Z"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := c.check(tt.method, tt.path, []byte(tt.req), tt.status, []byte(tt.resp)); err == nil {
				t.Fatal("checker accepted it")
			}
		})
	}
	ok := `{"id":"ep_1","tenant":"t","url":"https://x","events":["a"],"signature":"standard","ordering":"strict","rate_limit":0,"disabled":false,"version":1,"created_at":"2026-01-01T00:00:00Z","updated_at":"2026-01-01T00:00:00Z"}`
	if err := c.check("POST", "/v1/endpoints", []byte(`{"url":"https://x","events":["a"]}`), 201, []byte(ok)); err != nil {
		t.Fatalf("checker rejected a valid exchange: %v", err)
	}
}

// TestAsyncAPIServed: GET /v1/asyncapi.json answers without a token with
// the catalog's AsyncAPI document for the configured brand.
func TestAsyncAPIServed(t *testing.T) {
	cat, err := schemas.Load()
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(api.New(api.WithTokens(tokens), api.WithCatalog(cat), api.WithBrand("Acme")).Handler())
	t.Cleanup(srv.Close)
	r := epDo(t, "GET", srv.URL+"/v1/asyncapi.json", "", "")
	want, err := docs.AsyncAPI(cat, "Acme")
	if err != nil {
		t.Fatal(err)
	}
	if r.status != 200 || !bytes.Equal(r.body, want) {
		t.Fatalf("got %d %.200s; want 200 and docs.AsyncAPI for brand Acme", r.status, r.body)
	}
}

// TestEventsPageServed: GET /docs/events answers without a token with the
// branded events page.
func TestEventsPageServed(t *testing.T) {
	cat, err := schemas.Load()
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(api.New(api.WithTokens(tokens), api.WithCatalog(cat), api.WithBrand("Acme")).Handler())
	t.Cleanup(srv.Close)
	resp, err := http.Get(srv.URL + "/docs/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var want bytes.Buffer
	if err := docs.WritePage(&want, cat, docs.PageOptions{Brand: "Acme", Schedule: deliverer.DefaultSchedule, Tolerance: signature.DefaultTolerance}); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") || !bytes.Equal(b, want.Bytes()) {
		t.Fatalf("got %d %q, %d bytes; want 200 text/html and the Acme page", resp.StatusCode, resp.Header.Get("Content-Type"), len(b))
	}
}
