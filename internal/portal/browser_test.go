package portal

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
	"github.com/segmentio/encoding/json"

	"github.com/hookstream/hookstream/internal/api"
	"github.com/hookstream/hookstream/internal/testenv"
	"github.com/hookstream/hookstream/schemas"
	"github.com/hookstream/hookstream/signature"
)

// pipeline is the real thing: the api (with the portal), fanout,
// deliverer and indexer roles as processes on embedded Kafka and a real
// redis-server, and a receiver on 127.0.0.1.
type pipeline struct {
	api      string
	sessions *Sessions // same key and Redis as the api role's, to forge an expired link
	hooks    *receiver
}

const testPortalKey = "browser test portal key"

func startPipeline(t *testing.T) *pipeline {
	t.Helper()
	bin := testenv.Binary(t)
	k := testenv.StartKafka(t)
	r := testenv.StartRedis(t)
	common := []string{"--kafka-brokers", k.Addr, "--redis-url", r.URL, "--log-format", "text"}
	_, api := testenv.StartRole(t, bin, "api", append(common, "--api-tokens", "tok-acme=acme,tok-globex=globex,tok-admin=*",
		"--portal-key", testPortalKey, "--portal-name", "Acme Cloud", "--allow-private-destinations")...)
	testenv.StartRole(t, bin, "fanout", common...)
	testenv.StartRole(t, bin, "deliverer", append(common, "--allow-private-destinations", "--retry-schedule", "0s,1s", "--session-timeout", "6s")...)
	testenv.StartRole(t, bin, "indexer", common...)
	s, err := NewSessions([]byte(testPortalKey), r.Client)
	if err != nil {
		t.Fatal(err)
	}
	hooks := &receiver{}
	srv := httptest.NewServer(hooks)
	t.Cleanup(srv.Close)
	hooks.url = srv.URL + "/hook"
	return &pipeline{api: api, sessions: s, hooks: hooks}
}

// receiver keeps every webhook it gets and answers 204.
type receiver struct {
	url string
	mu  sync.Mutex
	got []webhook
}

type webhook struct {
	header http.Header
	body   []byte
}

func (h *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	h.mu.Lock()
	h.got = append(h.got, webhook{r.Header.Clone(), b})
	h.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

// of returns the webhooks of event id.
func (h *receiver) of(id string) []webhook {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []webhook
	for _, w := range h.got {
		if w.header.Get("webhook-id") == id {
			out = append(out, w)
		}
	}
	return out
}

func (p *pipeline) call(t *testing.T, token, path string, body any, out any) int {
	t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest("POST", p.api+path, bytes.NewReader(b))
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := (&http.Client{Timeout: 15 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	rb, _ := io.ReadAll(resp.Body)
	if out != nil {
		if err := json.Unmarshal(rb, out); err != nil {
			t.Fatalf("POST %s: %d %s", path, resp.StatusCode, rb)
		}
	}
	return resp.StatusCode
}

func (p *pipeline) link(t *testing.T, token string, caps ...string) string {
	t.Helper()
	var l struct{ URL string }
	if st := p.call(t, token, "/v1/portal/sessions", map[string]any{"capabilities": caps}, &l); st != http.StatusCreated {
		t.Fatalf("portal session: %d", st)
	}
	return l.URL
}

func (p *pipeline) publish(t *testing.T, token string, data json.RawMessage) string {
	t.Helper()
	var ev struct{ ID string }
	if st := p.call(t, token, "/v1/events", map[string]any{"event": "agent.created", "data": data}, &ev); st != http.StatusAccepted {
		t.Fatalf("publish: %d", st)
	}
	return ev.ID
}

// newPage opens a tab in a browser context of its own (its own cookies).
// Its first action runs without a deadline: chromedp ties the new tab to
// the context of that first call.
func newPage(t *testing.T, browser context.Context) page {
	t.Helper()
	ctx, cancel := chromedp.NewContext(browser, chromedp.WithNewBrowserContext())
	t.Cleanup(cancel)
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("new browser context: %v", err)
	}
	return page{t, ctx}
}

// page drives one browser tab, each step bounded so a missing element
// fails the test instead of hanging it.
type page struct {
	t   *testing.T
	ctx context.Context
}

func (pg page) do(what string, actions ...chromedp.Action[chromedp.Void]) {
	pg.t.Helper()
	ctx, cancel := context.WithTimeout(pg.ctx, 60*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		ectx, cancel := context.WithTimeout(pg.ctx, 5*time.Second)
		defer cancel()
		html, _ := chromedp.Run(ectx, chromedp.Evaluate[string](`location.href + "\n" + document.documentElement.outerHTML`))
		pg.t.Fatalf("%s: %v\npage:\n%s", what, err, html)
	}
}

func eval[T any](pg page, expr string) T {
	pg.t.Helper()
	ctx, cancel := context.WithTimeout(pg.ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		pg.t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

func (pg page) location() string { return eval[string](pg, `location.href`) }
func (pg page) body() string     { return eval[string](pg, `document.documentElement.outerHTML`) }

var axeSource = sync.OnceValues(func() ([]byte, error) { return os.ReadFile("testdata/axe.min.js") })

// axe runs axe-core on the page and fails the test for a serious or
// critical violation.
func (pg page) axe(name string) {
	pg.t.Helper()
	src, err := axeSource()
	if err != nil {
		pg.t.Fatal(err)
	}
	// DevTools evaluation is not bound by the page's CSP, which would
	// refuse this script (as it should any script not served by the portal).
	eval[bool](pg, string(src)+";true")
	type violation struct {
		ID, Impact, Help string
		Nodes            []string
	}
	ctx, cancel := context.WithTimeout(pg.ctx, 60*time.Second)
	defer cancel()
	vs, err := chromedp.Run(ctx, chromedp.Evaluate[[]violation](`axe.run(document, {resultTypes: ["violations"]}).then(r =>
		r.violations.map(v => ({ID: v.id, Impact: v.impact || "", Help: v.help, Nodes: v.nodes.slice(0, 3).map(n => n.html)})))`, chromedp.EvalAwaitPromise))
	if err != nil {
		pg.t.Fatalf("axe on %s: %v", name, err)
	}
	for _, v := range vs {
		if v.Impact == "serious" || v.Impact == "critical" {
			pg.t.Errorf("axe, %s page: %s %s (%s) on %q", name, v.Impact, v.ID, v.Help, v.Nodes)
		}
	}
}

// fits checks the page needs no horizontal scrolling at the viewport's width.
func (pg page) fits(name string) {
	pg.t.Helper()
	if eval[bool](pg, `document.documentElement.scrollWidth > window.innerWidth + 1`) {
		pg.t.Errorf("%s page is wider than the viewport (%d px)", name, eval[int](pg, `document.documentElement.scrollWidth`))
	}
}

func (pg page) screenshot(name string) {
	pg.t.Helper()
	dir := os.Getenv("HOOKSTREAM_SCREENSHOTS")
	if dir == "" {
		return
	}
	shot, err := chromedp.Run(pg.ctx, chromedp.CaptureScreenshot()) // the first screen, PNG
	if err != nil {
		pg.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "portal-"+name+".png"), shot, 0o644); err != nil {
		pg.t.Fatal(err)
	}
}

var epInLocation = regexp.MustCompile(`/portal/endpoints/(ep_[0-9a-f]+)`)

// TestPortalInBrowser drives the portal in headless Chromium through the
// whole pipeline: sign in with a link, add an endpoint with the form, see
// an event delivered in the log (refreshed in place), reveal and rotate
// the secret and check the receiver's signatures with each, and check that
// another tenant's link sees none of it and that expired, forged and
// revoked links show the sign-in-expired page. axe-core checks every page.
func TestPortalInBrowser(t *testing.T) {
	p := startPipeline(t)
	cat, err := schemas.Load()
	if err != nil {
		t.Fatal(err)
	}
	var example json.RawMessage
	for _, ty := range cat.Types() {
		if ty.Name == "agent.created" {
			example = ty.Example
		}
	}
	browser := testenv.Browser(t)
	acme := page{t, browser}

	// Sign in: the link lands on the portal, without the token in the URL,
	// and the session cookie is out of the page's reach.
	acme.do("open the link", chromedp.Navigate(p.link(t, "tok-acme", "manage_endpoints", "view_secrets", "recover")),
		chromedp.WaitVisible(chromedp.ID("no-endpoints")))
	if l := acme.location(); l != p.api+"/portal/" {
		t.Errorf("after sign-in the address is %s, want %s/portal/ (no token)", l, p.api)
	}
	if eval[string](acme, `document.cookie`) != "" {
		t.Error("the session cookie is readable by scripts")
	}
	if !eval[bool](acme, `typeof htmx === "object"`) {
		t.Error("htmx did not load under the page's CSP")
	}
	acme.axe("endpoints (none yet)")

	// Add an endpoint through the form.
	acme.do("open the form", chromedp.Click(chromedp.CSS(`a[href="/portal/endpoints/new"]`)), chromedp.WaitVisible(chromedp.ID("url")))
	acme.axe("new endpoint form")
	acme.screenshot("form")
	acme.do("fill in the form",
		chromedp.SendKeys(chromedp.ID("url"), p.hooks.url),
		chromedp.SendKeys(chromedp.ID("description"), "CRM sync"),
		chromedp.Click(chromedp.CSS(`input[name=events][value="*"]`)), // checked by default
		chromedp.Click(chromedp.CSS(`input[name=events][value="agent.*"]`)),
		chromedp.Click(chromedp.CSS(`main form button[type=submit]`)),
		chromedp.WaitVisible(chromedp.ID("log")),
	)
	m := epInLocation.FindStringSubmatch(acme.location())
	if m == nil || !strings.Contains(acme.body(), "Endpoint created.") {
		t.Fatalf("after the form: %s", acme.location())
	}
	epID := m[1]
	if !strings.Contains(acme.body(), "<code>agent.*</code>") {
		t.Error("the endpoint page does not show the agent.* filter")
	}

	// An event published now reaches the receiver and shows in the log
	// without a reload (htmx refreshes it).
	evt := p.publish(t, "tok-acme", example)
	acme.do("the delivered attempt in the log", chromedp.WaitVisible(chromedp.CSS(
		fmt.Sprintf(`tr.attempt[data-event=%q][data-outcome="delivered"]`, evt))))
	acme.axe("endpoint")

	// Reveal the secret: the receiver's webhook verifies with it.
	acme.do("reveal the secret", chromedp.Click(chromedp.CSS(`form[action$="/secret"] button`)), chromedp.WaitVisible(chromedp.ID("secret-value")))
	secret1 := eval[string](acme, `document.getElementById("secret-value").textContent`)
	hooks := p.hooks.of(evt)
	if len(hooks) == 0 {
		t.Fatal("the receiver did not get the event the log shows delivered")
	}
	if err := signature.Verify(hooks[0].header, hooks[0].body, []string{secret1}); err != nil {
		t.Errorf("the webhook does not verify with the revealed secret: %v", err)
	}
	if strings.Contains(acme.location(), "whsec_") {
		t.Error("the secret is in the URL")
	}

	// Send a test event from the endpoint's page: it arrives, to this
	// endpoint only, and shows in the log as a test.
	acme.do("send a test event",
		chromedp.SetValue(chromedp.ID("test-type"), "agent.created"),
		chromedp.Click(chromedp.CSS(`form[action$="/test"] button`)),
		chromedp.WaitVisible(chromedp.CSS(`tr.attempt[data-trigger="test"][data-outcome="delivered"]`)))
	testID := eval[string](acme, `document.querySelector('tr.attempt[data-trigger="test"]').dataset.event`)
	if len(p.hooks.of(testID)) != 1 {
		t.Errorf("the test event %s reached the receiver %d times, want once", testID, len(p.hooks.of(testID)))
	}

	// The events list, the event with its body as delivered, the attempt.
	acme.do("the events list", chromedp.Navigate(p.api+"/portal/events"),
		chromedp.WaitVisible(chromedp.CSS(fmt.Sprintf(`tr.event[data-event=%q][data-status="delivered"]`, evt))))
	acme.axe("events")
	acme.screenshot("events")
	acme.do("the event", chromedp.Click(chromedp.CSS(`a[href="/portal/events/`+evt+`"]`)), chromedp.WaitVisible(chromedp.ID("event-status")))
	if st := eval[string](acme, `document.getElementById("event-status").textContent`); st != "delivered" {
		t.Errorf("event status %q, want delivered", st)
	}
	var sent struct{ ID, Event string }
	if err := json.Unmarshal([]byte(eval[string](acme, `document.getElementById("event-body").textContent`)), &sent); err != nil || sent.ID != evt || sent.Event != "agent.created" {
		t.Errorf("the event's body on its page: %+v, %v", sent, err)
	}
	acme.axe("event")

	// Resend it: a job whose progress page follows it to done; the
	// receiver gets the same event (same id, same bytes) once more.
	acme.do("resend", chromedp.Click(chromedp.ID("resend-all")), chromedp.WaitVisible(chromedp.ID("job-state")))
	if !strings.Contains(acme.location(), "/portal/jobs/job_") {
		t.Errorf("after resend the page is %s, want the job's", acme.location())
	}
	acme.do("the job done", chromedp.WaitVisible(chromedp.CSS(`#job-state[data-state="done"]`)))
	acme.axe("job")
	acme.screenshot("job")
	testenv.Eventually(t, 30*time.Second, "the resent event at the receiver", func() bool { return len(p.hooks.of(evt)) == 2 })
	if again := p.hooks.of(evt); !bytes.Equal(again[0].body, again[1].body) {
		t.Errorf("the resent body differs:\n%s\n%s", again[0].body, again[1].body)
	}
	acme.do("the event after the resend", chromedp.Navigate(p.api+"/portal/events/"+evt),
		chromedp.WaitVisible(chromedp.CSS(`tr.attempt[data-trigger="resend"][data-outcome="delivered"]`)))
	acme.do("the attempt", chromedp.Click(chromedp.CSS(`tr.attempt[data-trigger="scheduled"] a[href^="/portal/attempts/"]`)), chromedp.WaitVisible(chromedp.ID("attempt-outcome")))
	attemptURL := acme.location()
	if o := eval[string](acme, `document.getElementById("attempt-outcome").textContent`); o != "delivered" {
		t.Errorf("attempt outcome %q", o)
	}
	if strings.Contains(acme.body(), secret1) {
		t.Error("the attempt page shows the secret")
	}
	var reqBody struct{ ID string }
	if err := json.Unmarshal([]byte(eval[string](acme, `(document.querySelector('pre[aria-label="Request body"]') || {}).textContent || ""`)), &reqBody); err != nil || reqBody.ID != evt {
		t.Errorf("the attempt page's request body: %+v, %v", reqBody, err)
	}
	// Headers are not in the index: the page reads them back from Kafka.
	if h := eval[string](acme, `(document.querySelector('pre[aria-label="Request headers"]') || {}).textContent || ""`); !strings.Contains(h, "Webhook-Id: "+evt) {
		t.Errorf("the attempt page's request headers %q lack Webhook-Id %s", h, evt)
	}
	acme.axe("attempt")
	acme.screenshot("attempt")

	// Rotate the secret with a grace period: the next webhook verifies
	// with the new secret.
	acme.do("rotate the secret",
		chromedp.Navigate(p.api+"/portal/endpoints/"+epID),
		chromedp.SetValue(chromedp.ID("grace"), "1h"),
		chromedp.Click(chromedp.CSS(`form[action$="/rotate-secret"] button`)),
		chromedp.WaitVisible(chromedp.ID("secret-value")),
	)
	secret2 := eval[string](acme, `document.getElementById("secret-value").textContent`)
	if secret2 == secret1 || !strings.HasPrefix(secret2, "whsec_") || !strings.Contains(acme.body(), "Secret rotated.") {
		t.Fatalf("after rotation the page shows %q (was %q)", secret2, secret1)
	}
	evt2 := p.publish(t, "tok-acme", example)
	testenv.Eventually(t, 30*time.Second, "the second webhook", func() bool { return len(p.hooks.of(evt2)) > 0 })
	h2 := p.hooks.of(evt2)[0]
	if err := signature.Verify(h2.header, h2.body, []string{secret2}); err != nil {
		t.Errorf("the webhook after rotation does not verify with the new secret: %v", err)
	}

	// The other pages.
	acme.do("the catalog", chromedp.Navigate(p.api+"/portal/event-types"), chromedp.WaitVisible(chromedp.CSS(`[id="type-agent.created"] table`)))
	acme.axe("event types")
	acme.screenshot("event-types")
	acme.do("verification", chromedp.Navigate(p.api+"/portal/endpoints/"+epID+"/verify"), chromedp.WaitVisible(chromedp.CSS(`pre.snippet`)))
	if n := eval[int](acme, `document.querySelectorAll("pre.snippet").length`); n != 4 {
		t.Errorf("%d snippets, want Node, Python, PHP and Go", n)
	}
	acme.axe("verify")
	acme.do("the edit form", chromedp.Navigate(p.api+"/portal/endpoints/"+epID+"/edit"), chromedp.WaitVisible(chromedp.ID("url")))
	if !eval[bool](acme, `document.querySelector('input[name=events][value="agent.*"]').checked`) {
		t.Error("the edit form does not show the endpoint's filter checked")
	}
	acme.axe("edit endpoint form")
	acme.do("home", chromedp.Navigate(p.api+"/portal/"), chromedp.WaitVisible(chromedp.ID("row-"+epID)))
	acme.axe("endpoints")
	acme.screenshot("endpoints")
	acme.do("endpoint", chromedp.Navigate(p.api+"/portal/endpoints/"+epID), chromedp.WaitVisible(chromedp.ID("log")))
	acme.screenshot("endpoint")
	eval[bool](acme, `document.getElementById("log").scrollIntoView(), true`)
	acme.screenshot("log")

	// A phone's width: no page needs sideways scrolling.
	acme.do("phone", chromedp.EmulateViewport(390, 844))
	for _, path := range []string{"/portal/", "/portal/endpoints/" + epID, "/portal/endpoints/new", "/portal/event-types", "/portal/events", "/portal/events/" + evt, attemptURL[len(p.api):]} {
		acme.do("phone "+path, chromedp.Navigate(p.api+path), chromedp.WaitVisible(chromedp.ID("main")))
		acme.fits("phone " + path)
		if path == "/portal/endpoints/"+epID {
			acme.screenshot("endpoint-phone")
		}
	}
	acme.do("desktop", chromedp.EmulateViewport(1280, 900))

	// Without JavaScript every page still reads (a view-only link here:
	// no control it may not use is offered).
	nojs := newPage(t, browser)
	nojs.do("scripts off", chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := cdp.Call(ctx, tg, emulation.SetScriptExecutionDisabled, emulation.SetScriptExecutionDisabledParams{Value: true})
		return err
	}))
	nojs.do("view-only sign-in without scripts", chromedp.Navigate(p.link(t, "tok-acme")), chromedp.WaitVisible(chromedp.ID("row-"+epID)))
	nojs.do("endpoint without scripts", chromedp.Navigate(p.api+"/portal/endpoints/"+epID), chromedp.WaitVisible(chromedp.ID("log")))
	if n := eval[int](nojs, `document.querySelectorAll("tr.attempt").length`); n < 2 {
		t.Errorf("without scripts the log shows %d attempts, want both", n)
	}
	if eval[bool](nojs, `typeof htmx !== "undefined"`) {
		t.Error("scripts ran although disabled")
	}
	for _, sel := range []string{`form[action$="/secret"]`, `form[action$="/rotate-secret"]`, `form[action$="/delete"]`, `a[href$="/edit"]`} {
		if eval[bool](nojs, `document.querySelector('`+sel+`') !== null`) {
			t.Errorf("a view-only session is offered %s", sel)
		}
	}

	// Another tenant's link, in a browser context of its own (its own
	// cookies), sees none of it.
	globex := newPage(t, browser)
	globex.do("globex signs in", chromedp.Navigate(p.link(t, "tok-globex", "manage_endpoints", "view_secrets", "recover")),
		chromedp.WaitVisible(chromedp.ID("no-endpoints")))
	for _, path := range []string{"/portal/", "/portal/events", "/portal/endpoints/" + epID, "/portal/endpoints/" + epID + "/verify", "/portal/events/" + evt, attemptURL[len(p.api):]} {
		globex.do("globex "+path, chromedp.Navigate(p.api+path), chromedp.WaitVisible(chromedp.ID("main")))
		if b := globex.body(); strings.Contains(b, epID) || strings.Contains(b, p.hooks.url) || strings.Contains(b, evt) && !strings.Contains(path, evt) {
			t.Errorf("globex sees acme's data on %s", path)
		}
	}
	globex.axe("not found")

	// Expired, forged and revoked: the sign-in-expired page, no data.
	old := *p.sessions
	old.now = func() time.Time { return time.Now().Add(-2 * time.Hour) }
	expired, _, err := old.Issue(context.Background(), "acme", api.PortalCapabilities, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	forged := []byte(strings.TrimPrefix(p.link(t, "tok-globex"), p.api+StartPath+"?token="))
	forged[3] ^= 1
	signedOut := func(pg page, what string) {
		t.Helper()
		pg.do(what, chromedp.WaitVisible(chromedp.ID("main")))
		if h1 := eval[string](pg, `document.querySelector("h1").textContent`); h1 != "Your sign-in has expired" {
			t.Errorf("%s: h1 %q, want the sign-in-expired page", what, h1)
		}
		if b := pg.body(); strings.Contains(b, epID) || strings.Contains(b, p.hooks.url) {
			t.Errorf("%s: the page shows acme's data", what)
		}
	}
	stranger := newPage(t, browser)
	stranger.do("expired link", chromedp.Navigate(p.api+StartPath+"?token="+expired))
	signedOut(stranger, "expired link")
	stranger.axe("sign-in expired")
	stranger.screenshot("signed-out")
	stranger.do("forged link", chromedp.Navigate(p.api+StartPath+"?token="+string(forged)))
	signedOut(stranger, "forged link")
	stranger.do("no session", chromedp.Navigate(p.api+"/portal/endpoints/"+epID))
	signedOut(stranger, "no session")

	if st := p.call(t, "tok-acme", "/v1/portal/sessions/revoke", map[string]any{}, nil); st != http.StatusNoContent {
		t.Fatalf("revoke: %d", st)
	}
	acme.do("after revoke", chromedp.Navigate(p.api+"/portal/endpoints/"+epID))
	signedOut(acme, "revoked session")
	globex.do("globex after acme's revoke", chromedp.Navigate(p.api+"/portal/"), chromedp.WaitVisible(chromedp.ID("no-endpoints")))
}
