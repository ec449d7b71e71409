package api_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/segmentio/encoding/json"

	"github.com/hookstream/hookstream/internal/api"
	"github.com/hookstream/hookstream/internal/testenv"
	"github.com/hookstream/hookstream/schemas"
	"github.com/hookstream/hookstream/signature"
	"github.com/hookstream/hookstream/subscription"
	"github.com/hookstream/hookstream/topic"
)

var epTokens = api.Tokens{"tok-acme": "acme", "tok-other": "other", "tok-admin": api.AdminTenant}

var epIDPattern = regexp.MustCompile(`^ep_[0-9a-f]{24}$`)

var quiet = slog.New(slog.DiscardHandler)

// epStack is the API on a real endpoint store (embedded Kafka, real
// Redis), which does not allow private destinations.
type epStack struct {
	base  string
	kafka *testenv.Kafka
	redis *testenv.Redis
	cat   *schemas.Catalog
}

func epServer(t *testing.T) string {
	t.Helper()
	return startEndpointsAPI(t).base
}

// startEndpointsAPI starts an epStack; opts configure the API server.
func startEndpointsAPI(t *testing.T, opts ...api.Option) *epStack {
	t.Helper()
	cat, err := schemas.Load()
	if err != nil {
		t.Fatal(err)
	}
	k := testenv.StartKafka(t)
	k.CreateTopics(t, "hookstream.", topic.Partitions{Events: 1, Deliveries: 1, Other: 1})
	r := testenv.StartRedis(t)
	rdb := redis.NewClient(&redis.Options{Addr: r.Addr})
	t.Cleanup(func() { _ = rdb.Close() })
	store := subscription.NewStore(k.Client(t), rdb, cat, subscription.WithLogger(quiet))
	testenv.Run(t, store)
	opts = append([]api.Option{api.WithTokens(epTokens), api.WithCatalog(cat),
		api.WithEndpoints(store), api.WithLogger(quiet)}, opts...)
	srv := httptest.NewServer(api.New(opts...).Handler())
	t.Cleanup(srv.Close)
	return &epStack{base: srv.URL, kafka: k, redis: r, cat: cat}
}

type epReply struct {
	status int
	body   []byte
}

func (r epReply) decode(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decoding %s: %v", r.body, err)
	}
}

// errorField returns the error body's code and field.
func (r epReply) errorField(t *testing.T) (string, string) {
	t.Helper()
	var e struct {
		Error struct{ Code, Message, Field string }
	}
	r.decode(t, &e)
	if e.Error.Message == "" {
		t.Errorf("error body without a message: %s", r.body)
	}
	return e.Error.Code, e.Error.Field
}

// epClient gives up long after any answer the tests expect, so a request
// that hangs fails its test instead of stalling it.
var epClient = &http.Client{Timeout: 10 * time.Second}

func epDo(t *testing.T, method, url, token, body string) epReply {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := epClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if ct := resp.Header.Get("Content-Type"); len(b) > 0 && ct != "application/json" {
		t.Errorf("%s %s: Content-Type %q, want application/json", method, url, ct)
	}
	checkExchange(t, req, body, resp.StatusCode, b)
	return epReply{resp.StatusCode, b}
}

type epView struct {
	ID, Tenant, URL, Description, Signature, Ordering, Secret, Timeout string
	Events                                                             []string
	RateLimit                                                          int `json:"rate_limit"`
	Headers                                                            map[string]string
	Disabled                                                           bool
	Version                                                            int64
}

const epCreateBody = `{"url":"https://93.184.215.14/hook","events":["agent.*"],"description":"crm"}`

func TestEndpointsCRUD(t *testing.T) {
	base := epServer(t)
	r := epDo(t, "POST", base+"/v1/endpoints", "tok-acme", epCreateBody)
	if r.status != http.StatusCreated {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	var ep epView
	r.decode(t, &ep)
	if !epIDPattern.MatchString(ep.ID) || ep.Tenant != "acme" || ep.Signature != "standard" || ep.Ordering != "strict" || ep.Version != 1 {
		t.Errorf("created %+v", ep)
	}
	if _, err := signature.ParseSecret(ep.Secret); err != nil {
		t.Errorf("create shows secret %q: %v", ep.Secret, err)
	}
	url := base + "/v1/endpoints/" + ep.ID

	r = epDo(t, "GET", url, "tok-acme", "")
	if r.status != http.StatusOK {
		t.Fatalf("get: %d %s", r.status, r.body)
	}
	if bytes.Contains(r.body, []byte("whsec_")) || bytes.Contains(r.body, []byte(`"secret`)) {
		t.Errorf("GET shows a secret: %s", r.body)
	}
	var got epView
	r.decode(t, &got)
	if got.ID != ep.ID || got.URL != "https://93.184.215.14/hook" || got.Description != "crm" {
		t.Errorf("get = %+v", got)
	}

	r = epDo(t, "PATCH", url, "tok-acme", `{"events":["call.*","agent.created"],"rate_limit":5,"ordering":"none","headers":{"X-Api-Key":"k"},"timeout":"30s"}`)
	if r.status != http.StatusOK {
		t.Fatalf("patch: %d %s", r.status, r.body)
	}
	r.decode(t, &got)
	if !slices.Equal(got.Events, []string{"call.*", "agent.created"}) || got.RateLimit != 5 || got.Ordering != "none" ||
		got.Headers["X-Api-Key"] != subscription.MaskedValue || got.Description != "crm" || got.Version != 2 || got.Secret != "" || got.Timeout != "30s" {
		t.Errorf("patched = %+v", got)
	}

	var secret struct{ Secret string }
	if r := epDo(t, "GET", url+"/secret", "tok-acme", ""); r.status != http.StatusOK {
		t.Fatalf("get secret: %d %s", r.status, r.body)
	} else if r.decode(t, &secret); secret.Secret != ep.Secret {
		t.Errorf("get secret = %q, want the one create answered", secret.Secret)
	}
	if r := epDo(t, "GET", url+"/secret", "tok-other", ""); r.status != http.StatusNotFound {
		t.Errorf("another tenant's secret: %d, want 404", r.status)
	}

	r = epDo(t, "POST", url+"/rotate-secret", "tok-acme", `{"grace":"1h"}`)
	if r.status != http.StatusCreated {
		t.Fatalf("rotate: %d %s", r.status, r.body)
	}
	var rotated struct {
		epView
		Expire []time.Time `json:"previous_secrets_expire_at"`
	}
	r.decode(t, &rotated)
	if rotated.Secret == "" || rotated.Secret == ep.Secret || len(rotated.Expire) != 1 ||
		rotated.Expire[0].Before(time.Now().Add(59*time.Minute)) {
		t.Errorf("rotate = %s", r.body)
	}
	if r := epDo(t, "POST", url+"/rotate-secret", "tok-acme", ""); r.status != http.StatusCreated {
		t.Errorf("rotate with no body (default grace): %d %s", r.status, r.body)
	}

	r = epDo(t, "GET", base+"/v1/endpoints", "tok-acme", "")
	var list struct {
		Data []epView
		Next *string
	}
	r.decode(t, &list)
	if r.status != http.StatusOK || len(list.Data) != 1 || list.Data[0].ID != ep.ID || list.Next != nil ||
		!bytes.Contains(r.body, []byte(`"next":null`)) || bytes.Contains(r.body, []byte("whsec_")) {
		t.Errorf("list: %d %s; want the endpoint and \"next\": null", r.status, r.body)
	}

	if r := epDo(t, "DELETE", url, "tok-acme", ""); r.status != http.StatusNoContent || len(r.body) != 0 {
		t.Fatalf("delete: %d %s", r.status, r.body)
	}
	r = epDo(t, "GET", url, "tok-acme", "")
	if code, _ := r.errorField(t); r.status != http.StatusNotFound || code != api.CodeNotFound {
		t.Errorf("get after delete: %d %s", r.status, r.body)
	}
	if r := epDo(t, "DELETE", url, "tok-acme", ""); r.status != http.StatusNotFound {
		t.Errorf("second delete: %d, want 404", r.status)
	}
}

func TestEndpointsTenantIsolation(t *testing.T) {
	base := epServer(t)
	var ep epView
	epDo(t, "POST", base+"/v1/endpoints", "tok-acme", epCreateBody).decode(t, &ep)
	url := base + "/v1/endpoints/" + ep.ID
	for _, c := range []struct{ method, url, body string }{
		{"GET", url, ""},
		{"PATCH", url, `{"description":"x"}`},
		{"DELETE", url, ""},
		{"POST", url + "/rotate-secret", `{"grace":"0s"}`},
	} {
		r := epDo(t, c.method, c.url, "tok-other", c.body)
		if code, _ := r.errorField(t); r.status != http.StatusNotFound || code != api.CodeNotFound {
			t.Errorf("%s as another tenant: %d %s, want 404", c.method, r.status, r.body)
		}
	}
	var list struct{ Data []epView }
	epDo(t, "GET", base+"/v1/endpoints", "tok-other", "").decode(t, &list)
	if len(list.Data) != 0 {
		t.Errorf("another tenant lists %v", list.Data)
	}
	// A tenant token may not name another tenant.
	if r := epDo(t, "GET", url+"?tenant=acme", "tok-other", ""); r.status != http.StatusForbidden {
		t.Errorf("tenant token naming another tenant: %d, want 403", r.status)
	}
	// The admin token acts for the tenant it names.
	if r := epDo(t, "GET", url+"?tenant=acme", "tok-admin", ""); r.status != http.StatusOK {
		t.Errorf("admin GET ?tenant=acme: %d %s", r.status, r.body)
	}
	if r := epDo(t, "GET", url+"?tenant=other", "tok-admin", ""); r.status != http.StatusNotFound {
		t.Errorf("admin GET ?tenant=other: %d, want 404", r.status)
	}
	if r := epDo(t, "GET", url, "tok-admin", ""); r.status != http.StatusBadRequest {
		t.Errorf("admin GET naming no tenant: %d, want 400", r.status)
	}
	r := epDo(t, "POST", base+"/v1/endpoints", "tok-admin", `{"tenant":"other","url":"https://1.1.1.1/","events":["*"]}`)
	var made epView
	r.decode(t, &made)
	if r.status != http.StatusCreated || made.Tenant != "other" {
		t.Errorf("admin create for tenant other: %d %s", r.status, r.body)
	}
	// Unchanged for its owner.
	var got epView
	epDo(t, "GET", url, "tok-acme", "").decode(t, &got)
	if got.Version != 1 || got.Description != "crm" {
		t.Errorf("owner's endpoint changed by the other tenant's requests: %+v", got)
	}
}

func TestEndpointsErrors(t *testing.T) {
	base := epServer(t)
	var ep epView
	epDo(t, "POST", base+"/v1/endpoints", "tok-acme", epCreateBody).decode(t, &ep)
	url := base + "/v1/endpoints/" + ep.ID
	tests := []struct {
		name, method, url, token, body string
		status                         int
		code, field                    string
	}{
		{"no token", "POST", base + "/v1/endpoints", "", epCreateBody, 401, api.CodeUnauthorized, ""},
		{"unknown token", "GET", base + "/v1/endpoints", "nope", "", 401, api.CodeUnauthorized, ""},
		{"not JSON", "POST", base + "/v1/endpoints", "tok-acme", `{"url":`, 400, api.CodeMalformed, ""},
		{"not an object", "POST", base + "/v1/endpoints", "tok-acme", `["x"]`, 400, api.CodeMalformed, ""},
		{"empty body", "POST", base + "/v1/endpoints", "tok-acme", ``, 400, api.CodeMalformed, ""},
		{"repeated key", "POST", base + "/v1/endpoints", "tok-acme", `{"url":"https://1.1.1.1/","events":["*"],"url":"https://8.8.8.8/"}`, 400, api.CodeMalformed, "/url"},
		{"nested too deep", "POST", base + "/v1/endpoints", "tok-acme", strings.Repeat("[", 200_000), 400, api.CodeMalformed, ""},
		{"bad URL", "POST", base + "/v1/endpoints", "tok-acme", `{"url":"ftp://x","events":["*"]}`, 422, api.CodeInvalid, "/url"},
		{"private URL", "POST", base + "/v1/endpoints", "tok-acme", `{"url":"http://10.0.0.1/","events":["*"]}`, 422, api.CodeInvalid, "/url"},
		{"localhost", "POST", base + "/v1/endpoints", "tok-acme", `{"url":"http://localhost:8080/","events":["*"]}`, 422, api.CodeInvalid, "/url"},
		{"missing URL", "POST", base + "/v1/endpoints", "tok-acme", `{"events":["*"]}`, 422, api.CodeInvalid, "/url"},
		{"unknown filter", "POST", base + "/v1/endpoints", "tok-acme", `{"url":"https://1.1.1.1/","events":["*","agent.nope"]}`, 422, api.CodeInvalid, "/events/1"},
		{"no events", "POST", base + "/v1/endpoints", "tok-acme", `{"url":"https://1.1.1.1/"}`, 422, api.CodeInvalid, "/events"},
		{"signature", "POST", base + "/v1/endpoints", "tok-acme", `{"url":"https://1.1.1.1/","events":["*"],"signature":"md5"}`, 422, api.CodeInvalid, "/signature"},
		{"ordering", "POST", base + "/v1/endpoints", "tok-acme", `{"url":"https://1.1.1.1/","events":["*"],"ordering":"x"}`, 422, api.CodeInvalid, "/ordering"},
		{"rate limit type", "POST", base + "/v1/endpoints", "tok-acme", `{"url":"https://1.1.1.1/","events":["*"],"rate_limit":"fast"}`, 422, api.CodeInvalid, "/rate_limit"},
		{"negative rate limit", "POST", base + "/v1/endpoints", "tok-acme", `{"url":"https://1.1.1.1/","events":["*"],"rate_limit":-2}`, 422, api.CodeInvalid, "/rate_limit"},
		{"timeout not a duration", "POST", base + "/v1/endpoints", "tok-acme", `{"url":"https://1.1.1.1/","events":["*"],"timeout":30}`, 422, api.CodeInvalid, "/timeout"},
		{"timeout too long", "POST", base + "/v1/endpoints", "tok-acme", `{"url":"https://1.1.1.1/","events":["*"],"timeout":"2m"}`, 422, api.CodeInvalid, "/timeout"},
		{"timeout too short", "PATCH", url, "tok-acme", `{"timeout":"10ms"}`, 422, api.CodeInvalid, "/timeout"},
		{"hop-by-hop header", "POST", base + "/v1/endpoints", "tok-acme", `{"url":"https://1.1.1.1/","events":["*"],"headers":{"Upgrade":"h2c"}}`, 422, api.CodeInvalid, "/headers/Upgrade"},
		{"bad secret", "POST", base + "/v1/endpoints", "tok-acme", `{"url":"https://1.1.1.1/","events":["*"],"secret":"hunter2"}`, 422, api.CodeInvalid, "/secret"},
		{"unknown field", "POST", base + "/v1/endpoints", "tok-acme", `{"url":"https://1.1.1.1/","events":["*"],"filter":"x"}`, 422, api.CodeInvalid, "/filter"},
		{"events not a list", "POST", base + "/v1/endpoints", "tok-acme", `{"url":"https://1.1.1.1/","events":"*"}`, 422, api.CodeInvalid, "/events"},
		{"patch secret", "PATCH", url, "tok-acme", `{"secret":"whsec_x"}`, 422, api.CodeInvalid, "/secret"},
		{"patch bad URL", "PATCH", url, "tok-acme", `{"url":"http://169.254.169.254/"}`, 422, api.CodeInvalid, "/url"},
		{"patch empty events", "PATCH", url, "tok-acme", `{"events":[]}`, 422, api.CodeInvalid, "/events"},
		{"patch description too long", "PATCH", url, "tok-acme", `{"description":"` + strings.Repeat("x", 1025) + `"}`, 422, api.CodeInvalid, "/description"},
		{"rotate bad grace", "POST", url + "/rotate-secret", "tok-acme", `{"grace":"soon"}`, 422, api.CodeInvalid, "/grace"},
		{"rotate negative grace", "POST", url + "/rotate-secret", "tok-acme", `{"grace":"-1h"}`, 422, api.CodeInvalid, "/grace"},
		{"unknown id", "GET", base + "/v1/endpoints/ep_000000000000000000000000", "tok-acme", "", 404, api.CodeNotFound, ""},
		{"bad limit", "GET", base + "/v1/endpoints?limit=abc", "tok-acme", "", 400, api.CodeInvalid, "/limit"},
		{"limit too large", "GET", base + "/v1/endpoints?limit=251", "tok-acme", "", 400, api.CodeInvalid, "/limit"},
		{"cursor no endpoint id", "GET", base + "/v1/endpoints?cursor=zzz", "tok-acme", "", 400, api.CodeInvalid, "/cursor"},
		{"cursor a NUL", "GET", base + "/v1/endpoints?cursor=%00", "tok-acme", "", 400, api.CodeInvalid, "/cursor"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := epDo(t, tt.method, tt.url, tt.token, tt.body)
			code, field := r.errorField(t)
			if r.status != tt.status || code != tt.code || field != tt.field {
				t.Errorf("%d %s field %q (%s); want %d %s field %q", r.status, code, field, r.body, tt.status, tt.code, tt.field)
			}
		})
	}
	var got epView
	epDo(t, "GET", url, "tok-acme", "").decode(t, &got)
	if got.Version != 1 {
		t.Errorf("refused requests changed the endpoint to version %d", got.Version)
	}
}

func TestEndpointsPagination(t *testing.T) {
	base := epServer(t)
	var want []string
	for range 5 {
		var ep epView
		epDo(t, "POST", base+"/v1/endpoints", "tok-acme", epCreateBody).decode(t, &ep)
		want = append(want, ep.ID)
		time.Sleep(2 * time.Millisecond) // ids order by creation millisecond
	}
	epDo(t, "POST", base+"/v1/endpoints", "tok-other", epCreateBody)
	var got []string
	next, pages := "", 0
	for {
		u := base + "/v1/endpoints?limit=2"
		if next != "" {
			u += "&cursor=" + next
		}
		r := epDo(t, "GET", u, "tok-acme", "")
		// A pointer, and the raw body: "next" must be present, and
		// null on the last page.
		var page struct {
			Data []epView
			Next *string
		}
		r.decode(t, &page)
		if r.status != http.StatusOK || !bytes.Contains(r.body, []byte(`"next":`)) {
			t.Fatalf("list: %d %s", r.status, r.body)
		}
		pages++
		for _, e := range page.Data {
			got = append(got, e.ID)
		}
		if page.Next == nil {
			break
		}
		if *page.Next == "" {
			t.Fatalf("page %d: empty next cursor: %s", pages, r.body)
		}
		next = *page.Next
	}
	if pages != 3 || !slices.Equal(got, want) {
		t.Errorf("listed %v in %d pages, want %v in 3", got, pages, want)
	}
	var all struct{ Data []epView }
	r := epDo(t, "GET", base+"/v1/endpoints", "tok-acme", "")
	r.decode(t, &all)
	if len(all.Data) != 5 || !bytes.Contains(r.body, []byte(`"next":null`)) {
		t.Errorf("default page: %s; want all 5 endpoints and \"next\": null", r.body)
	}
	// A tenant without endpoints: an empty page, the last one.
	if r = epDo(t, "GET", base+"/v1/endpoints?tenant=nobody", "tok-admin", ""); r.status != http.StatusOK ||
		!bytes.Contains(r.body, []byte(`{"data":[],"next":null}`)) {
		t.Errorf("empty list: %d %s; want {\"data\":[],\"next\":null}", r.status, r.body)
	}
}

func TestEndpointsRedisDown(t *testing.T) {
	st := startEndpointsAPI(t)
	base := st.base
	var ep epView
	epDo(t, "POST", base+"/v1/endpoints", "tok-acme", epCreateBody).decode(t, &ep)
	st.redis.Stop()
	for _, c := range []struct{ method, url, body string }{
		{"GET", base + "/v1/endpoints/" + ep.ID, ""},
		{"GET", base + "/v1/endpoints", ""},
		{"PATCH", base + "/v1/endpoints/" + ep.ID, `{"description":"x"}`},
	} {
		rep := epDo(t, c.method, c.url, "tok-acme", c.body)
		if code, _ := rep.errorField(t); rep.status != http.StatusServiceUnavailable || code != api.CodeUnavailable {
			t.Errorf("%s %s with Redis down: %d %s, want 503", c.method, c.url, rep.status, rep.body)
		}
	}
}

// TestEndpointsPrivateURLStaysWritable: an endpoint whose URL this server
// would refuse (written by a store that allowed private destinations) can
// still have its description, disabled flag and secret changed; only a new
// URL is checked.
func TestEndpointsPrivateURLStaysWritable(t *testing.T) {
	st := startEndpointsAPI(t)
	lax := subscription.NewStore(st.kafka.Client(t), st.redis.Client, st.cat,
		subscription.WithAllowPrivate(true), subscription.WithLogger(quiet))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ep, err := lax.Create(ctx, "acme", subscription.EndpointInput{URL: "http://10.0.0.5/hook", Events: []string{"agent.*"}})
	if err != nil {
		t.Fatal(err)
	}
	url := st.base + "/v1/endpoints/" + ep.ID
	tests := []struct {
		name, method, url, body string
		status                  int
		field                   string
	}{
		{"description only", "PATCH", url, `{"description":"renamed"}`, http.StatusOK, ""},
		{"disable", "PATCH", url, `{"disabled":true}`, http.StatusOK, ""},
		{"rotate secret", "POST", url + "/rotate-secret", `{"grace":"1h"}`, http.StatusCreated, ""},
		{"another private URL", "PATCH", url, `{"url":"http://10.0.0.6/hook"}`, http.StatusUnprocessableEntity, "/url"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := epDo(t, tt.method, tt.url, "tok-acme", tt.body)
			if tt.field == "" {
				if r.status != tt.status {
					t.Fatalf("%d %s, want %d", r.status, r.body, tt.status)
				}
				return
			}
			if _, field := r.errorField(t); r.status != tt.status || field != tt.field {
				t.Fatalf("%d %s, want %d naming %s", r.status, r.body, tt.status, tt.field)
			}
		})
	}
	var got epView
	epDo(t, "GET", url, "tok-acme", "").decode(t, &got)
	if got.Description != "renamed" || !got.Disabled || got.URL != "http://10.0.0.5/hook" || got.Version != 4 {
		t.Errorf("stored %+v; want renamed, disabled, same URL, version 4", got)
	}
}

// TestEndpointsDeadline: with Kafka down while Redis is empty, the store
// cannot rebuild its cache and every read waits for it; the API answers 503
// once its timeout passed instead of holding the request.
func TestEndpointsDeadline(t *testing.T) {
	const timeout = 300 * time.Millisecond
	st := startEndpointsAPI(t, api.WithBackendTimeout(timeout))
	r := epDo(t, "POST", st.base+"/v1/endpoints", "tok-acme", epCreateBody)
	if r.status != http.StatusCreated {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	var ep epView
	r.decode(t, &ep)
	st.kafka.Server.Close()
	st.redis.FlushAll(t)
	url := st.base + "/v1/endpoints/" + ep.ID
	for _, c := range []struct{ method, url, body string }{
		{"GET", url, ""},
		{"GET", st.base + "/v1/endpoints", ""},
		{"PATCH", url, `{"description":"x"}`},
		{"DELETE", url, ""},
		{"POST", url + "/rotate-secret", ""},
		{"POST", st.base + "/v1/endpoints", epCreateBody},
	} {
		start := time.Now()
		r := epDo(t, c.method, c.url, "tok-acme", c.body)
		took := time.Since(start)
		if code, _ := r.errorField(t); r.status != http.StatusServiceUnavailable || code != api.CodeUnavailable {
			t.Errorf("%s %s: %d %s, want 503 %s", c.method, c.url, r.status, r.body, api.CodeUnavailable)
		}
		if took > timeout+2*time.Second {
			t.Errorf("%s %s answered after %v, want about the %v timeout", c.method, c.url, took.Round(time.Millisecond), timeout)
		}
	}
}

// TestCreateRecordedButNotCached: Redis refuses the store's scripts after
// Kafka took a new endpoint (an ACL denies them, a real fault of a real
// Redis). The create is answered 201 with the endpoint and its secret,
// not 503: it is recorded and applied once Redis takes it, and a client
// retrying a 503 would have made a second endpoint.
func TestCreateRecordedButNotCached(t *testing.T) {
	st := startEndpointsAPI(t)
	ctx := context.Background()
	if r := epDo(t, "GET", st.base+"/v1/endpoints", "tok-acme", ""); r.status != 200 {
		t.Fatalf("list: %d %s", r.status, r.body)
	}
	acl := func(rules ...any) {
		t.Helper()
		if err := st.redis.Client.Do(ctx, append([]any{"ACL", "SETUSER", "default"}, rules...)...).Err(); err != nil {
			t.Fatal(err)
		}
	}
	acl("-eval", "-evalsha")
	t.Cleanup(func() { acl("+@all") })
	r := epDo(t, "POST", st.base+"/v1/endpoints", "tok-acme", epCreateBody)
	var created struct {
		ID     string
		Secret string
	}
	r.decode(t, &created)
	if r.status != 201 || created.ID == "" || created.Secret == "" {
		t.Fatalf("create while Redis refused scripts: %d %s, want 201 with the endpoint and its secret", r.status, r.body)
	}
	acl("+@all")
	var list struct{ Data []epView }
	testenv.Eventually(t, 20*time.Second, "the endpoint listed", func() bool {
		epDo(t, "GET", st.base+"/v1/endpoints", "tok-acme", "").decode(t, &list)
		return len(list.Data) > 0
	})
	if len(list.Data) != 1 || list.Data[0].ID != created.ID {
		t.Fatalf("endpoints %+v, want %s alone", list.Data, created.ID)
	}
}
