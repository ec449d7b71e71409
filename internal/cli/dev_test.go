package cli

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/segmentio/encoding/json"

	"github.com/hookstream/hookstream/envelope"
	"github.com/hookstream/hookstream/internal/testenv"
	"github.com/hookstream/hookstream/schemas"
	"github.com/hookstream/hookstream/signature"
)

var (
	readyLine   = regexp.MustCompile(`^hookstream dev ready: api=(http://\S+) token=(\S+) tenant=(\S+) kafka=(\S+)$`)
	demoLine    = regexp.MustCompile(`^demo: receiver (\S+), endpoint (ep_\S+) \((\w[\w-]*)\), publishing (\d+) example events$`)
	webhookLine = regexp.MustCompile(`^webhook (✓|✗) (\S+) (\S+) → (\S+) sig=(\S+)`)
)

// devProc is `hookstream dev` running as a process of its own, so that it
// gets a real SIGINT and a real restart. Its Out is its stderr (the log).
type devProc struct {
	*testenv.Process
	t      *testing.T
	stdout *testenv.Output
}

func startDev(t *testing.T, dir string, args ...string) *devProc {
	t.Helper()
	cmd := exec.Command(testenv.Binary(t), append([]string{"dev"}, args...)...)
	cmd.Dir = dir
	cmd.Env = devTestEnv()
	stdout := &testenv.Output{}
	cmd.Stdout = stdout
	p := &devProc{Process: testenv.Start(t, cmd), t: t, stdout: stdout}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("hookstream dev stdout:\n%s", stdout.String())
		}
	})
	return p
}

// devTestEnv is the test's environment without HOOKSTREAM_* variables, which
// would change the flags under test.
func devTestEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "HOOKSTREAM_") {
			env = append(env, kv)
		}
	}
	return env
}

// snapshot returns the lines printed so far.
func (p *devProc) snapshot() []string { return p.stdout.Lines() }

// waitFor polls stdout until done says so, failing after a minute or when the
// process exits first.
func (p *devProc) waitFor(what string, done func(lines []string) bool) {
	p.t.Helper()
	p.WaitFor(p.t, what, time.Minute, func() bool { return done(p.snapshot()) })
}

// waitMatch returns the submatches of the first stdout line matching re.
func (p *devProc) waitMatch(re *regexp.Regexp) []string {
	p.t.Helper()
	var m []string
	p.waitFor("a line matching "+re.String(), func(lines []string) bool {
		for _, l := range lines {
			if m = re.FindStringSubmatch(l); m != nil {
				return true
			}
		}
		return false
	})
	return m
}

// stop sends SIGINT and waits for the exit, at most within grace (plus the
// time a loaded machine may take to run the last deferred closes).
func (p *devProc) stop(grace time.Duration) {
	p.t.Helper()
	switch exited, err := p.Stop(syscall.SIGINT, grace+5*time.Second); {
	case !exited:
		p.t.Fatalf("hookstream dev still running %s after SIGINT (shutdown grace %s)", grace+5*time.Second, grace)
	case err != nil:
		p.t.Fatalf("hookstream dev exited with %v after SIGINT, want 0", err)
	}
}

// webhook is one line the demo receiver printed.
type webhook struct {
	ok                       bool
	event, id, endpoint, sig string
}

func webhooks(lines []string) []webhook {
	var out []webhook
	for _, l := range lines {
		if m := webhookLine.FindStringSubmatch(l); m != nil {
			out = append(out, webhook{ok: m[1] == "✓", event: m[2], id: m[3], endpoint: m[4], sig: m[5]})
		}
	}
	return out
}

// verifiedTypes are the event types received with a valid signature for
// endpoint ep, among ids not in skip.
func verifiedTypes(lines []string, ep string, skip map[string]bool) map[string]string {
	types := map[string]string{}
	for _, w := range webhooks(lines) {
		if w.ok && w.sig == "valid" && w.endpoint == ep && !skip[w.id] {
			types[w.event] = w.id
		}
	}
	return types
}

// demoTypes are the event types the demo publishes: every catalog type
// but endpoint.disabled.
func demoTypes(t *testing.T) []string {
	t.Helper()
	catalog, err := schemas.Load()
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for _, typ := range catalog.Types() {
		if typ.Name != "endpoint.disabled" {
			types = append(types, typ.Name)
		}
	}
	if len(types) != len(catalog.Types())-1 {
		t.Fatalf("catalog %d types, none of them endpoint.disabled", len(catalog.Types()))
	}
	return types
}

func allTypesVerified(t *testing.T, ep string, skip map[string]bool) func([]string) bool {
	types := demoTypes(t)
	return func(lines []string) bool {
		got := verifiedTypes(lines, ep, skip)
		for _, typ := range types {
			if _, ok := got[typ]; !ok {
				return false
			}
		}
		return true
	}
}

// TestDemoEvents: one valid example of every type the demo publishes, and
// no endpoint.disabled, which would look like a failure to a newcomer.
func TestDemoEvents(t *testing.T) {
	catalog, err := schemas.Load()
	if err != nil {
		t.Fatal(err)
	}
	events, err := demoEvents(catalog)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range events {
		if err := catalog.Validate(e.Type, e.Data); err != nil {
			t.Errorf("%s example: %v", e.Type, err)
		}
		got = append(got, e.Type)
	}
	if want := demoTypes(t); !slices.Equal(got, want) {
		t.Errorf("demo event types %q, want %q", got, want)
	}
}

func freeAddr(t *testing.T) string {
	return "127.0.0.1:" + strconv.Itoa(testenv.FreePort(t))
}

// apiCall sends a JSON request with the dev token and decodes the answer.
func apiCall(t *testing.T, method, url, token string, body any, out any) int {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil && len(b) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %d %s: %v", method, url, resp.StatusCode, b, err)
		}
	}
	return resp.StatusCode
}

// hookReceiver is a customer's receiver on a fixed address, started only
// after the event it waits for was published.
type hookReceiver struct {
	mu       sync.Mutex
	verified map[string]int // event id -> deliveries with a valid signature
	bad      []error
}

func (h *hookReceiver) serve(t *testing.T, addr, secret string) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		h.mu.Lock()
		defer h.mu.Unlock()
		if err := signature.Verify(r.Header, body, []string{secret}); err != nil {
			h.bad = append(h.bad, err)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		h.verified[r.Header.Get(signature.HeaderID)]++
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
}

func (h *hookReceiver) got(id string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.verified[id]
}

// TestDevDemoRestart runs `hookstream dev --demo` as a process: every demo
// type arrives verified at the demo receiver; Ctrl-C stops it within the
// grace; a restart on the same data dir keeps the token, the endpoints (the
// demo endpoint is reused, not duplicated) and an event that could not be
// delivered before the stop, which then arrives.
func TestDevDemoRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("starts hookstream dev twice")
	}
	const grace = 10 * time.Second
	dir := t.TempDir()
	dataDir := filepath.Join(dir, "data")
	kafkaAddr, httpAddr, demoAddr, hookAddr := freeAddr(t), freeAddr(t), freeAddr(t), freeAddr(t)
	args := []string{"--demo", "--data-dir", dataDir, "--kafka-addr", kafkaAddr, "--http-addr", httpAddr,
		"--demo-addr", demoAddr, "--shutdown-grace", grace.String(),
		// Short retries, none of them parked for minutes: the event below
		// must still be pending, not scheduled far out or dead, when the
		// second run starts.
		"--retry-schedule", "0s" + strings.Repeat(",2s", 59)}

	// First run.
	p := startDev(t, dir, args...)
	ready := p.waitMatch(readyLine)
	apiURL, token, tenant, kafka := ready[1], ready[2], ready[3], ready[4]
	if apiURL != "http://"+httpAddr || tenant != "demo" || kafka != kafkaAddr || !regexp.MustCompile(`^dev_[0-9a-f]{32}$`).MatchString(token) {
		t.Fatalf("ready line %q: want api=http://%s, a dev_<hex> token, tenant=demo, kafka=%s", ready[0], httpAddr, kafkaAddr)
	}
	d := p.waitMatch(demoLine)
	demoEP := d[2]
	if d[1] != "http://"+demoAddr+"/webhooks" || d[3] != "created" {
		t.Errorf("demo line %q: want receiver http://%s/webhooks and a created endpoint", d[0], demoAddr)
	}
	p.waitFor("a verified webhook of every demo type", allTypesVerified(t, demoEP, nil))
	first := map[string]bool{}
	for _, w := range webhooks(p.snapshot()) {
		if !w.ok {
			t.Errorf("the demo receiver refused a webhook: %+v", w)
		}
		if w.event == "endpoint.disabled" {
			t.Errorf("the demo received endpoint.disabled, with no endpoint disabled: %+v", w)
		}
		first[w.id] = true
	}
	if saved, err := os.ReadFile(filepath.Join(dataDir, "token")); err != nil || strings.TrimSpace(string(saved)) != token {
		t.Errorf("token file: %q, %v; want the printed token", saved, err)
	}
	for _, path := range []string{"/healthz", "/readyz", "/metrics"} {
		if code := apiCall(t, http.MethodGet, apiURL+path, "", nil, nil); code != http.StatusOK {
			t.Errorf("GET %s: %d, want 200", path, code)
		}
	}

	// An endpoint whose receiver is down until after the restart, and an
	// event for it.
	var ep struct{ ID, Secret string }
	if code := apiCall(t, http.MethodPost, apiURL+"/v1/endpoints", token, map[string]any{
		"url": "http://" + hookAddr + "/hook", "events": []string{"billing.payment_failed"},
	}, &ep); code != http.StatusCreated || ep.Secret == "" {
		t.Fatalf("create endpoint: %d %+v", code, ep)
	}
	catalog, err := schemas.Load()
	if err != nil {
		t.Fatal(err)
	}
	var data json.RawMessage
	for _, typ := range catalog.Types() {
		if typ.Name == "billing.payment_failed" {
			e, err := envelope.Decode(typ.Envelope, 0)
			if err != nil {
				t.Fatal(err)
			}
			data = e.Data
		}
	}
	var published struct{ ID string }
	if code := apiCall(t, http.MethodPost, apiURL+"/v1/events", token, map[string]any{
		"event": "billing.payment_failed", "data": data,
	}, &published); code != http.StatusAccepted || published.ID == "" {
		t.Fatalf("publish: %d %+v", code, published)
	}
	// Fanned out: the demo endpoint got it; the other endpoint cannot.
	p.waitFor("the demo receiver to get "+published.ID, func(lines []string) bool {
		for _, w := range webhooks(lines) {
			if w.id == published.ID && w.ok {
				return true
			}
		}
		return false
	})
	p.stop(grace)

	// Second run, the receiver of the pending event now up.
	hook := &hookReceiver{verified: map[string]int{}}
	hook.serve(t, hookAddr, ep.Secret)
	p = startDev(t, dir, args...)
	ready = p.waitMatch(readyLine)
	if ready[2] != token {
		t.Errorf("token after restart %q, want %q (kept in the data dir)", ready[2], token)
	}
	d = p.waitMatch(demoLine)
	if d[2] != demoEP || d[3] != "reused" {
		t.Errorf("demo line after restart %q: want endpoint %s reused", d[0], demoEP)
	}
	p.waitFor("a verified webhook of every demo type, with fresh ids", allTypesVerified(t, demoEP, first))
	deadline := time.Now().Add(time.Minute)
	for hook.got(published.ID) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("event %s, published before the stop, never reached its endpoint after the restart (refused: %v)", published.ID, hook.bad)
		}
		time.Sleep(50 * time.Millisecond)
	}
	var list struct {
		Data []struct{ ID, URL string }
	}
	if code := apiCall(t, http.MethodGet, apiURL+"/v1/endpoints", token, nil, &list); code != http.StatusOK {
		t.Fatalf("list endpoints: %d", code)
	}
	ids := map[string]bool{}
	for _, e := range list.Data {
		ids[e.ID] = true
	}
	if len(list.Data) != 2 || !ids[demoEP] || !ids[ep.ID] {
		t.Errorf("endpoints after restart: %+v; want exactly the demo endpoint %s and %s", list.Data, demoEP, ep.ID)
	}
	for _, w := range webhooks(p.snapshot()) {
		if !w.ok {
			t.Errorf("the demo receiver refused a webhook after the restart: %+v", w)
		}
		if first[w.id] {
			t.Errorf("event %s (%s), delivered in the first run, delivered again", w.id, w.event)
		}
	}
	p.stop(grace)
	if len(hook.bad) > 0 {
		t.Errorf("the endpoint's receiver refused deliveries: %v", hook.bad)
	}
}

// TestDevMemoryOnly: with --data-dir "" nothing is written, and --api-token
// fixes the token.
func TestDevMemoryOnly(t *testing.T) {
	if testing.Short() {
		t.Skip("starts hookstream dev")
	}
	dir := t.TempDir()
	p := startDev(t, dir, "--demo", "--data-dir", "", "--api-token", "tok_fixed",
		"--kafka-addr", freeAddr(t), "--http-addr", freeAddr(t), "--demo-addr", freeAddr(t))
	ready := p.waitMatch(readyLine)
	if ready[2] != "tok_fixed" {
		t.Errorf("token %q, want the --api-token", ready[2])
	}
	d := p.waitMatch(demoLine)
	p.waitFor("a verified webhook of every demo type", allTypesVerified(t, d[2], nil))
	var list struct{ Data []struct{ ID string } }
	if code := apiCall(t, http.MethodGet, ready[1]+"/v1/endpoints", "tok_fixed", nil, &list); code != http.StatusOK || len(list.Data) != 1 {
		t.Errorf("list endpoints with the fixed token: %d, %d endpoints; want 200, 1", code, len(list.Data))
	}
	p.stop(10 * time.Second)
	if entries, err := os.ReadDir(dir); err != nil || len(entries) != 0 {
		t.Errorf("working directory after a memory-only run: %v %v; want it empty", entries, err)
	}
}

func TestDevUsageErrors(t *testing.T) {
	tests := []struct {
		args []string
		flag string // the message names it
	}{
		{[]string{"--log-format", "xml"}, "--log-format"},
		{[]string{"--log-level", "loud"}, "--log-level"},
		{[]string{"--shutdown-grace", "0s"}, "--shutdown-grace"},
		{[]string{"--retry-schedule", "soon"}, "--retry-schedule"},
		{[]string{"--signature-brand", "a b"}, "--signature-brand"},
		{[]string{"--api-token", "a b"}, "--api-token"},
		{[]string{"extra"}, "extra"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			code, stdout, stderr := runMain(t, "", append([]string{"dev"}, tt.args...)...)
			if code != 2 || !strings.Contains(stderr, tt.flag) {
				t.Errorf("exit %d, stderr %q; want 2 and a message naming %s", code, stderr, tt.flag)
			}
			if stdout != "" {
				t.Errorf("stdout %q, want nothing", stdout)
			}
		})
	}
}

func TestDevToken(t *testing.T) {
	dir := t.TempDir()
	tok, err := devToken(dir, "")
	if err != nil || !regexp.MustCompile(`^dev_[0-9a-f]{32}$`).MatchString(tok) {
		t.Fatalf("new token %q, %v", tok, err)
	}
	if info, err := os.Stat(filepath.Join(dir, "token")); err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("token file: %v %v; want mode 0600", info, err)
	}
	again, err := devToken(dir, "")
	if err != nil || again != tok {
		t.Errorf("second start: %q, %v; want the kept %q", again, err, tok)
	}
	if fixed, err := devToken(dir, "mine"); err != nil || fixed != "mine" {
		t.Errorf("fixed token: %q, %v", fixed, err)
	}
	if kept, _ := devToken(dir, ""); kept != tok {
		t.Errorf("a fixed token replaced the kept one: %q, want %q", kept, tok)
	}
	if err := os.WriteFile(filepath.Join(dir, "token"), []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if fresh, err := devToken(dir, ""); err != nil || fresh == tok || !strings.HasPrefix(fresh, "dev_") {
		t.Errorf("after the file was emptied: %q, %v; want a new dev_ token", fresh, err)
	}
	a, _ := devToken("", "")
	b, _ := devToken("", "")
	if a == b || !strings.HasPrefix(a, "dev_") {
		t.Errorf("memory-only tokens %q, %q: want fresh dev_ tokens", a, b)
	}
}

func TestSameURL(t *testing.T) {
	tests := []struct {
		a, b string
		want bool
	}{
		{"http://127.0.0.1:8081/webhooks", "http://127.0.0.1:8081/webhooks", true},
		{"http://127.0.0.1:8081", "http://127.0.0.1:8081/", true},
		{"HTTP://LOCALHOST:8081/x", "http://localhost:8081/x", true},
		{"http://127.0.0.1:8081/webhooks", "http://127.0.0.1:8081/other", false},
		{"http://127.0.0.1:8081/webhooks", "http://127.0.0.1:8082/webhooks", false},
		{"http://127.0.0.1:8081/w?a=1", "http://127.0.0.1:8081/w?a=2", false},
		{"http://127.0.0.1:8081/W", "http://127.0.0.1:8081/w", false},
	}
	for _, tt := range tests {
		if got := sameURL(tt.a, tt.b); got != tt.want {
			t.Errorf("sameURL(%q, %q) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
	}
}
