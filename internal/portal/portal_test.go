package portal

import (
	"context"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hookstream/hookstream/internal/api"
	"github.com/hookstream/hookstream/internal/deliverylog"
	"github.com/hookstream/hookstream/internal/recovery"
	"github.com/hookstream/hookstream/internal/testenv"
	"github.com/hookstream/hookstream/schemas"
	"github.com/hookstream/hookstream/subscription"
	"github.com/hookstream/hookstream/topic"
)

// stack is the portal on a real endpoint store (embedded Kafka, real
// Redis) and delivery log index.
type stack struct {
	base     string
	portal   *Portal
	sessions *Sessions
	store    *subscription.Store
}

func startStack(t *testing.T) *stack {
	t.Helper()
	cat, err := schemas.Load()
	if err != nil {
		t.Fatal(err)
	}
	k := testenv.StartKafka(t)
	k.CreateTopics(t, "hookstream.", topic.Partitions{Events: 1, Deliveries: 1, Other: 1})
	r := testenv.StartRedis(t)
	quiet := slog.New(slog.DiscardHandler)
	store := subscription.NewStore(k.Client(t), r.Client, cat, subscription.WithLogger(quiet))
	testenv.Run(t, store)
	sessions, err := NewSessions([]byte("portal test key, long enough"), r.Client)
	if err != nil {
		t.Fatal(err)
	}
	ix := deliverylog.NewIndex(r.Client, 0)
	jobs, err := recovery.New(recovery.Config{Topics: topic.New(topic.DefaultPrefix), ClientOpts: []kgo.Opt{kgo.SeedBrokers(k.Addr)},
		Endpoints: store, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(jobs.Close)
	testenv.Run(t, jobs)
	<-jobs.Loaded()
	server := api.New(api.WithEndpoints(store), api.WithDeliveryLog(ix), api.WithCatalog(cat), api.WithLogger(quiet))
	p, err := New(Deps{Sessions: sessions, Endpoints: store, Log: ix, API: server, Jobs: jobs, Failing: ix, Catalog: cat, Logger: quiet,
		Branding: Branding{Name: "Acme"}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(p.Handler())
	t.Cleanup(srv.Close)
	return &stack{base: srv.URL, portal: p, sessions: sessions, store: store}
}

// visitor is a browser-like client: a cookie jar, no redirects followed.
type visitor struct {
	t    *testing.T
	base string
	http *http.Client
	csrf string
}

func (s *stack) signIn(t *testing.T, tenant string, caps ...Capability) *visitor {
	t.Helper()
	names := make([]string, len(caps))
	for i, c := range caps {
		names[i] = string(c)
	}
	tok, _, err := s.sessions.Issue(context.Background(), tenant, names, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	jar, _ := cookiejar.New(nil)
	v := &visitor{t: t, base: s.base, http: &http.Client{Jar: jar, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
	if st, body := v.get(StartPath + "?token=" + url.QueryEscape(tok)); st != 200 || !strings.Contains(body, `url=/portal/`) {
		t.Fatalf("start: %d %s", st, body)
	}
	st, body := v.get("/portal/")
	if st != 200 {
		t.Fatalf("portal home after sign-in: %d", st)
	}
	v.csrf = csrfOf(t, body)
	return v
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func csrfOf(t *testing.T, body string) string {
	t.Helper()
	m := csrfField.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no csrf field in %s", body)
	}
	return m[1]
}

func (v *visitor) do(req *http.Request) (int, string) {
	v.t.Helper()
	resp, err := v.http.Do(req)
	if err != nil {
		v.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe") {
		v.t.Errorf("%s %s: CSP %q", req.Method, req.URL.Path, csp)
	}
	return resp.StatusCode, string(b)
}

func (v *visitor) get(path string) (int, string) {
	v.t.Helper()
	req, _ := http.NewRequest("GET", v.base+path, nil)
	return v.do(req)
}

// post submits a form with the visitor's CSRF token unless form sets one.
func (v *visitor) post(path string, form url.Values) (int, string) {
	v.t.Helper()
	form = maps.Clone(form)
	if form == nil {
		form = url.Values{}
	}
	if _, ok := form["csrf"]; !ok {
		form.Set("csrf", v.csrf)
	}
	req, _ := http.NewRequest("POST", v.base+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return v.do(req)
}

func (s *stack) endpoint(t *testing.T, tenant string) *subscription.Endpoint {
	t.Helper()
	e, err := s.store.Create(context.Background(), tenant, subscription.EndpointInput{URL: "https://93.184.215.14/hook", Events: []string{"agent.*"}})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// TestCapabilitiesEnforced walks every route of the portal: a view-only
// session reaches the view routes and is refused (403, nothing changed,
// no secret shown) on every other one; a session with every capability
// is refused on none.
func TestCapabilitiesEnforced(t *testing.T) {
	s := startStack(t)
	e := s.endpoint(t, "acme")
	viewer := s.signIn(t, "acme")
	admin := s.signIn(t, "acme", ManageEndpoints, ViewSecrets, Recover)
	path := func(pattern string) string {
		_, p, _ := strings.Cut(pattern, " ")
		p = strings.ReplaceAll(strings.ReplaceAll(p, "{$}", ""), "{id}", e.ID)
		return p
	}
	form := url.Values{"url": {"https://93.184.215.14/other"}, "events": {"*"}, "signature": {"standard"}, "ordering": {"strict"},
		"grace": {"1h"}, "confirm": {"yes"}}
	// Run the refusals first: a refused route must leave the endpoint as
	// it was for the next one.
	for _, rt := range s.portal.routes() {
		if rt.need == View {
			continue
		}
		method := rt.pattern[:strings.Index(rt.pattern, " ")]
		var st int
		var body string
		if method == "GET" {
			st, body = viewer.get(path(rt.pattern))
		} else {
			st, body = viewer.post(path(rt.pattern), form)
		}
		if st != http.StatusForbidden || strings.Contains(body, "whsec_") {
			t.Errorf("view-only %s: %d, want 403 without a secret", rt.pattern, st)
		}
	}
	eps, _, err := s.store.List(context.Background(), "acme", "", 10)
	if err != nil || len(eps) != 1 || eps[0].Version != e.Version || eps[0].Secrets[0].Value != e.Secrets[0].Value {
		t.Fatalf("after the refused requests: %d endpoints, %v; want the one, unchanged", len(eps), err)
	}
	for _, rt := range s.portal.routes() {
		if rt.need != View || strings.HasPrefix(rt.pattern, "POST /portal/logout") {
			continue
		}
		if st, _ := viewer.get(path(rt.pattern)); st == http.StatusForbidden || st == http.StatusUnauthorized {
			t.Errorf("view-only GET %s: %d", rt.pattern, st)
		}
	}
	// Every capability: no route refuses. Delete goes last.
	for _, rt := range s.portal.routes() {
		if rt.need == View || strings.HasSuffix(rt.pattern, "/delete") {
			continue
		}
		var st int
		if strings.HasPrefix(rt.pattern, "GET") {
			st, _ = admin.get(path(rt.pattern))
		} else {
			st, _ = admin.post(path(rt.pattern), form)
		}
		if st == http.StatusForbidden || st == http.StatusUnauthorized || st >= 500 {
			t.Errorf("full access %s: %d", rt.pattern, st)
		}
	}
	if st, body := admin.post("/portal/endpoints/"+e.ID+"/secret", nil); st != 200 || !strings.Contains(body, "whsec_") {
		t.Errorf("reveal with view_secrets: %d, secret shown %v", st, strings.Contains(body, "whsec_"))
	}
	if st, _ := admin.post("/portal/endpoints/"+e.ID+"/delete", form); st != http.StatusSeeOther {
		t.Errorf("delete with manage_endpoints: %d", st)
	}
}

// TestCSRF: a state-changing request without the session's CSRF token is
// refused, even from a session allowed to make it.
func TestCSRF(t *testing.T) {
	s := startStack(t)
	e := s.endpoint(t, "acme")
	admin := s.signIn(t, "acme", ManageEndpoints)
	other := s.signIn(t, "acme", ManageEndpoints)
	for _, tok := range []string{"", other.csrf, admin.csrf + "x"} {
		if st, _ := admin.post("/portal/endpoints/"+e.ID+"/disable", url.Values{"csrf": {tok}}); st != http.StatusForbidden {
			t.Errorf("csrf %q: %d, want 403", tok, st)
		}
	}
	if got, _ := s.store.Get(context.Background(), "acme", e.ID); got.Disabled {
		t.Fatal("disabled without a valid CSRF token")
	}
	if st, _ := admin.post("/portal/endpoints/"+e.ID+"/disable", nil); st != http.StatusSeeOther {
		t.Errorf("with its token: %d, want 303", st)
	}
	if got, _ := s.store.Get(context.Background(), "acme", e.ID); !got.Disabled {
		t.Error("not disabled with a valid CSRF token")
	}
}

// TestSignedOut: without a valid session (none, forged, expired, revoked,
// a used link) every page is the sign-in-expired page, 401, with no data.
func TestSignedOut(t *testing.T) {
	s := startStack(t)
	e := s.endpoint(t, "acme")
	ctx := context.Background()
	v := s.signIn(t, "acme", ManageEndpoints, ViewSecrets)
	u, _ := url.Parse(s.base + "/portal/")
	cookie := v.http.Jar.Cookies(u)[0]
	setCookie := func(val string) *visitor {
		jar, _ := cookiejar.New(nil)
		jar.SetCookies(u, []*http.Cookie{{Name: CookieName, Value: val, Path: "/portal/"}})
		return &visitor{t: t, base: s.base, http: &http.Client{Jar: jar, CheckRedirect: v.http.CheckRedirect}, csrf: v.csrf}
	}
	payload, sig, _ := strings.Cut(cookie.Value, ".")
	expired := *s.sessions
	expired.now = func() time.Time { return time.Now().Add(-2 * time.Hour) }
	expiredLink, _, _ := expired.Issue(ctx, "acme", nil, time.Hour)
	_, expiredCookie, _ := expired.Exchange(ctx, expiredLink)
	usedLink, _, _ := s.sessions.Issue(ctx, "acme", nil, time.Hour)
	if _, _, err := s.sessions.Exchange(ctx, usedLink); err != nil {
		t.Fatal(err)
	}

	check := func(name string, v *visitor, path string) {
		t.Helper()
		st, body := v.get(path)
		if st != http.StatusUnauthorized || !strings.Contains(body, "sign-in has expired") || strings.Contains(body, e.ID) || strings.Contains(body, "93.184.215.14") {
			t.Errorf("%s: GET %s = %d, want 401 sign-in-expired page without data", name, path, st)
		}
	}
	pages := []string{"/portal/", "/portal/endpoints/" + e.ID, "/portal/event-types"}
	for _, p := range pages {
		check("no cookie", setCookie(""), p)
		check("forged", setCookie(payload+"x."+sig), p)
		check("expired", setCookie(expiredCookie), p)
	}
	check("expired link", setCookie(""), StartPath+"?token="+url.QueryEscape(expiredLink))
	check("forged link", setCookie(""), StartPath+"?token=e30.AAAA")
	check("used link", setCookie(""), StartPath+"?token="+url.QueryEscape(usedLink))
	if st, _ := setCookie(payload+"x."+sig).post("/portal/endpoints/"+e.ID+"/secret", nil); st != http.StatusUnauthorized {
		t.Errorf("forged cookie reveal: %d, want 401", st)
	}

	if st, _ := v.get("/portal/"); st != 200 {
		t.Fatalf("before revoke: %d", st)
	}
	if err := s.sessions.Revoke(ctx, "acme"); err != nil {
		t.Fatal(err)
	}
	for _, p := range pages {
		check("revoked", v, p)
	}
}

func TestTextOnAccent(t *testing.T) {
	for _, tt := range []struct{ accent, want string }{
		{"#1a56db", "#ffffff"}, {"#000", "#ffffff"}, {"#ffd33d", "#000000"}, {"#fff", "#000000"},
	} {
		if got := textOn(tt.accent); got != tt.want {
			t.Errorf("textOn(%s) = %s, want %s", tt.accent, got, tt.want)
		}
	}
	for _, b := range []Branding{{Accent: "red"}, {Accent: "#12345"}, {LogoURL: "javascript:alert(1)"}, {LogoURL: "logo.png"}} {
		if b.Check() == nil {
			t.Errorf("Check(%+v) = nil, want an error", b)
		}
	}
}

// TestEndpointForm: the form creates and edits an endpoint; a value the
// store refuses comes back on the form (422) next to its field, with what
// was typed kept; a masked header value is kept on save.
func TestEndpointForm(t *testing.T) {
	s := startStack(t)
	v := s.signIn(t, "acme", ManageEndpoints)
	ctx := context.Background()
	for _, tt := range []struct {
		name  string
		form  url.Values
		field string
	}{
		{"private URL", url.Values{"url": {"http://127.0.0.1/hook"}, "events": {"*"}}, `id="url-error"`},
		{"no events", url.Values{"url": {"https://93.184.215.14/hook"}}, `id="events-error"`},
		{"unknown type", url.Values{"url": {"https://93.184.215.14/hook"}, "events_other": {"nope.*"}}, `id="events-error"`},
		{"rate limit", url.Values{"url": {"https://93.184.215.14/hook"}, "events": {"*"}, "rate_limit": {"fast"}}, `id="rate-error"`},
		{"header line", url.Values{"url": {"https://93.184.215.14/hook"}, "events": {"*"}, "headers": {"no colon"}}, `id="headers-error"`},
	} {
		st, body := v.post("/portal/endpoints", tt.form)
		if st != http.StatusUnprocessableEntity || !strings.Contains(body, tt.field) || !strings.Contains(body, `value="`+tt.form.Get("url")+`"`) {
			t.Errorf("%s: %d, want 422 with %s and the URL kept", tt.name, st, tt.field)
		}
	}
	if eps, _, _ := s.store.List(ctx, "acme", "", 10); len(eps) != 0 {
		t.Fatalf("refused forms created %d endpoints", len(eps))
	}

	// A credential no random token on the page (CSRF, ids) can contain by
	// chance, as "k1" could.
	const apiKey = "credential-value-never-shown"
	st, _ := v.post("/portal/endpoints", url.Values{"url": {"https://93.184.215.14/hook"}, "events": {"agent.*", "call.started"},
		"signature": {"seed"}, "ordering": {"none"}, "rate_limit": {"5"}, "headers": {"X-Api-Key: " + apiKey + "\nX-Team: blue"}, "description": {"crm"}})
	eps, _, _ := s.store.List(ctx, "acme", "", 10)
	if st != http.StatusSeeOther || len(eps) != 1 {
		t.Fatalf("create: %d, %d endpoints", st, len(eps))
	}
	e := eps[0]
	if e.Signature != "seed" || e.Ordering != "none" || e.RateLimit != 5 || e.Headers["X-Api-Key"] != apiKey || len(e.Events) != 2 || e.Description != "crm" {
		t.Errorf("created %+v", e)
	}
	st, body := v.get("/portal/endpoints/" + e.ID + "/edit")
	if st != 200 || strings.Contains(body, apiKey) || !strings.Contains(body, "X-Api-Key: "+subscription.MaskedValue) {
		t.Fatalf("edit form: %d; the credential header must show masked", st)
	}
	st, _ = v.post("/portal/endpoints/"+e.ID, url.Values{"url": {"https://93.184.215.14/v2"}, "events": {"agent.*"}, "signature": {"standard"},
		"ordering": {"strict"}, "headers": {"X-Api-Key: " + subscription.MaskedValue}})
	got, _ := s.store.Get(ctx, "acme", e.ID)
	if st != http.StatusSeeOther || got.URL != "https://93.184.215.14/v2" || got.Headers["X-Api-Key"] != apiKey || got.Headers["X-Team"] != "" || got.RateLimit != 0 {
		t.Errorf("edit: %d, %+v; want the new URL, the masked header kept, X-Team removed, no rate limit", st, got)
	}
}

// TestRecoveryForms: recover and replay start jobs whose page shows their
// state; a window without a start, or ending before it, is refused.
func TestRecoveryForms(t *testing.T) {
	s := startStack(t)
	e := s.endpoint(t, "acme")
	v := s.signIn(t, "acme", Recover)
	since := time.Now().UTC().Add(-time.Hour).Format("2006-01-02T15:04")
	for _, action := range []string{"recover", "replay"} {
		st, _ := v.post("/portal/endpoints/"+e.ID+"/"+action, url.Values{"since": {since}})
		if st != http.StatusSeeOther {
			t.Fatalf("%s: %d, want 303 to the job", action, st)
		}
		for _, bad := range []url.Values{{}, {"since": {"yesterday"}}, {"since": {since}, "until": {"2000-01-01T00:00"}}} {
			if st, _ := v.post("/portal/endpoints/"+e.ID+"/"+action, bad); st != http.StatusUnprocessableEntity {
				t.Errorf("%s %v: %d, want 422", action, bad, st)
			}
		}
	}
	req, _ := http.NewRequest("POST", s.base+"/portal/endpoints/"+e.ID+"/recover", strings.NewReader(url.Values{"since": {since}, "csrf": {v.csrf}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := v.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	job := resp.Header.Get("Location")
	if !strings.HasPrefix(job, "/portal/jobs/job_") {
		t.Fatalf("recover redirects to %q", job)
	}
	testenv.Eventually(t, 30*time.Second, "the job done", func() bool {
		_, body := v.get(job)
		return strings.Contains(body, `data-state="done"`)
	})
	other := s.signIn(t, "globex")
	if st, body := other.get(job); st != http.StatusNotFound || strings.Contains(body, e.ID) {
		t.Errorf("another tenant's job: %d, want 404 without it", st)
	}
}
