package cli

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/encoding/json"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hookstream/hookstream/internal/record"
	"github.com/hookstream/hookstream/internal/testenv"
	"github.com/hookstream/hookstream/signature"
	"github.com/hookstream/hookstream/topic"
)

// metricWant is a series a role's /metrics must have after the traffic:
// present, and above zero when positive says so.
type metricWant struct {
	name     string
	labels   []string // `key="value"` pairs the series must have
	positive bool
}

// Instruments every role with that part of the pipeline exports.
var (
	apiMetrics = []metricWant{
		{"hookstream_events_published_total", []string{`event_type="agent.created"`}, true},
	}
	fanoutMetrics = []metricWant{
		{"hookstream_fanout_events_total", []string{`outcome="fanned_out"`}, true},
		{"hookstream_fanout_events_total", []string{`outcome="dead_lettered"`}, true}, // the poison records
		{"hookstream_fanout_deliveries_total", nil, true},
		{"hookstream_fanout_transactions_total", []string{`result="committed"`}, true},
		{"hookstream_consumer_lag", []string{`group="hookstream-fanout"`, `topic="hookstream.events"`}, false},
		{"hookstream_fanout_unassigned_duration_seconds", nil, false},
		{"hookstream_fanout_commit_age_seconds", nil, false},
	}
	delivererMetrics = []metricWant{
		{"hookstream_deliverer_deliveries_total", []string{`outcome="delivered"`}, true},
		{"hookstream_deliverer_attempt_duration_seconds_count", []string{`outcome="delivered"`}, true},
		// Buckets in seconds: a local receiver answers within 1s.
		{"hookstream_deliverer_attempt_duration_seconds_bucket", []string{`outcome="delivered"`, `le="1"`}, true},
		{"hookstream_deliverer_lanes_backoff", nil, false},
		{"hookstream_deliverer_deliveries_total", []string{`outcome="dead"`}, false},
		{"hookstream_deliverer_parked_total", nil, false},
		{"hookstream_deliverer_dead_total", []string{`reason="exhausted"`}, false},
		{"hookstream_consumer_lag", []string{`group="hookstream-deliverer"`, `topic="hookstream.deliveries"`}, false},
		{"hookstream_deliverer_unassigned_duration_seconds", nil, false},
		{"hookstream_deliverer_commit_age_seconds", nil, false},
	}
)

// TestRoleMetricsAndLogs runs api, fanout and deliverer as their commands,
// sends traffic through them (an endpoint that answers, one that always
// fails until its deliveries are parked and dead-lettered, a record that is
// no event, an event breaking its schema), then scrapes each role's
// /metrics for its instruments and reads each role's debug log for the
// endpoints' secrets, the API token and the event data, none of which may
// appear.
func TestRoleMetricsAndLogs(t *testing.T) {
	k := testenv.StartKafka(t)
	rd := testenv.StartRedis(t)
	token := "tok_" + randomHex(t)
	marker := "marker-" + randomHex(t)
	flags := []string{"--kafka-brokers", k.Addr, "--redis-url", rd.URL, "--log-level", "debug", "--shutdown-grace", "5s",
		"--partitions-deliveries", "2"}
	apiBase, apiLogs := startRole(t, "api", map[string]string{"HOOKSTREAM_API_TOKENS": token + "=acme"},
		append(flags, "--http-addr", freeAddr(t), "--allow-private-destinations")...)
	fanBase, fanLogs := startRole(t, "fanout", nil, append(flags, "--http-addr", freeAddr(t))...)
	// Attempt 2 waits in memory (a lane in backoff), attempt 3 longer than
	// the park threshold (parked in retries); then the schedule is over.
	delBase, delLogs := startRole(t, "deliverer", nil, append(flags, "--http-addr", freeAddr(t), "--allow-private-destinations",
		"--retry-schedule", "0s,50ms,300ms", "--park-threshold", "100ms", "--drain-timeout", "1s")...)

	ok, failing := newCountingReceiver(t, http.StatusNoContent), newCountingReceiver(t, http.StatusInternalServerError)
	var secrets []string
	for _, recv := range []*countingReceiver{ok, failing} {
		var ep struct{ Secret string }
		if code := apiCall(t, http.MethodPost, apiBase+"/v1/endpoints", token,
			map[string]any{"url": recv.URL, "events": []string{"agent.*"}}, &ep); code != http.StatusCreated || ep.Secret == "" {
			t.Fatalf("create endpoint: %d, secret %q", code, ep.Secret)
		}
		secrets = append(secrets, ep.Secret)
	}
	produceRecord(t, k.Addr, &kgo.Record{Topic: topic.New(topic.DefaultPrefix).Events, Value: []byte("not an event")})
	produceRecord(t, k.Addr, invalidEvent(marker))

	// Read-your-writes: one event published after the endpoints were
	// created reaches them; it is never published again.
	var ev struct{ ID string }
	if code := apiCall(t, http.MethodPost, apiBase+"/v1/events", token, map[string]any{"event": "agent.created",
		"data": map[string]any{"agent_id": "agt_1", "name": marker, "model": "m", "created_by": 1}}, &ev); code != http.StatusAccepted {
		t.Fatalf("POST /v1/events: %d", code)
	}
	delivered := ev.ID
	testenv.Eventually(t, time.Minute, "the event delivered", func() bool { return ok.ids()[delivered] > 0 })
	testenv.Eventually(t, time.Minute, "every attempt of the failing endpoint made", func() bool { return failing.ids()[delivered] == 3 })

	// Parked and dead are counted once Kafka acknowledged the records.
	withTraffic := append(append([]metricWant(nil), delivererMetrics...),
		metricWant{"hookstream_deliverer_deliveries_total", []string{`outcome="dead"`}, true},
		metricWant{"hookstream_deliverer_parked_total", nil, true},
		metricWant{"hookstream_deliverer_dead_total", []string{`reason="exhausted"`}, true},
	)
	for _, role := range []struct {
		name, base string
		want       []metricWant
	}{
		{"api", apiBase, apiMetrics},
		{"fanout", fanBase, fanoutMetrics},
		{"deliverer", delBase, withTraffic},
	} {
		checkMetrics(t, role.name, role.base+"/metrics", role.want)
	}
	for role, logs := range map[string]*testenv.Output{"api": apiLogs, "fanout": fanLogs, "deliverer": delLogs} {
		checkLogs(t, role, logs.String(), append(secrets, token, marker))
		checkLogFormat(t, role, logs.String(), "json") // no --log-format: production's default
	}
}

// TestDevMetricsAndLogs does the same for `hookstream dev`, whose one
// /metrics serves every role's instruments.
func TestDevMetricsAndLogs(t *testing.T) {
	if testing.Short() {
		t.Skip("starts hookstream dev")
	}
	token := "tok_" + randomHex(t)
	marker := "marker-" + randomHex(t)
	p := startDev(t, t.TempDir(), "--data-dir", "", "--api-token", token, "--log-level", "debug",
		"--kafka-addr", freeAddr(t), "--http-addr", freeAddr(t), "--demo", "--demo-addr", freeAddr(t))
	ready := p.waitMatch(readyLine)
	base, kafkaAddr := ready[1], ready[4]
	p.waitMatch(demoLine)

	ok := newCountingReceiver(t, http.StatusNoContent)
	var ep struct{ Secret string }
	if code := apiCall(t, http.MethodPost, base+"/v1/endpoints", token,
		map[string]any{"url": ok.URL, "events": []string{"agent.*"}}, &ep); code != http.StatusCreated || ep.Secret == "" {
		t.Fatalf("create endpoint: %d, secret %q", code, ep.Secret)
	}
	produceRecord(t, kafkaAddr, &kgo.Record{Topic: topic.New(topic.DefaultPrefix).Events, Value: []byte("not an event")})
	produceRecord(t, kafkaAddr, invalidEvent(marker))
	var ev struct{ ID string }
	if code := apiCall(t, http.MethodPost, base+"/v1/events", token, map[string]any{"event": "agent.created",
		"data": map[string]any{"agent_id": "agt_1", "name": marker, "model": "m", "created_by": 1}}, &ev); code != http.StatusAccepted {
		t.Fatalf("POST /v1/events: %d", code)
	}
	testenv.Eventually(t, time.Minute, "the event delivered", func() bool { return ok.ids()[ev.ID] > 0 })
	checkMetrics(t, "dev", base+"/metrics", append(append(append([]metricWant(nil), apiMetrics...), fanoutMetrics...), delivererMetrics...))
	p.stop(10 * time.Second)
	checkLogs(t, "dev", p.Out.String(), []string{ep.Secret, token, marker})
	checkLogFormat(t, "dev", p.Out.String(), "text") // no --log-format: a terminal's default
}

// slogText is the start of a line of slog's text handler.
var slogText = regexp.MustCompile(`^time=\S+ level=(DEBUG|INFO|WARN|ERROR) msg=`)

// checkLogFormat fails unless every line of logs is a slog record in format
// (json or text).
func checkLogFormat(t *testing.T, role, logs, format string) {
	t.Helper()
	if strings.TrimSpace(logs) == "" {
		t.Errorf("%s logged nothing", role)
	}
	for _, line := range notSlog(logs, format) {
		t.Errorf("%s log line is not slog %s: %s", role, format, line)
	}
}

// notSlog returns the lines of logs that are not slog records in format.
func notSlog(logs, format string) []string {
	var bad []string
	for line := range strings.Lines(logs) {
		var rec struct{ Time, Level, Msg string }
		isJSON := json.Unmarshal([]byte(line), &rec) == nil && rec.Time != "" && rec.Level != "" && rec.Msg != ""
		if format == "json" && !isJSON || format == "text" && (isJSON || !slogText.MatchString(line)) {
			bad = append(bad, line)
		}
	}
	return bad
}

func TestNotSlog(t *testing.T) {
	var js, text strings.Builder
	slog.New(slog.NewJSONHandler(&js, nil)).Info("started", "addr", ":9090")
	slog.New(slog.NewTextHandler(&text, nil)).Warn("slow", "endpoint", "ep_1")
	tests := []struct {
		logs, format string
		bad          int
	}{
		{js.String(), "json", 0},
		{text.String(), "text", 0},
		{js.String(), "text", 1},
		{text.String(), "json", 1},
		{js.String() + "panic: boom\n", "json", 1},
		{text.String() + "hookstream dev: bad\n", "text", 1},
	}
	for _, tt := range tests {
		if got := notSlog(tt.logs, tt.format); len(got) != tt.bad {
			t.Errorf("notSlog(%q, %s) = %q, want %d lines", tt.logs, tt.format, got, tt.bad)
		}
	}
}

// checkMetrics scrapes url until every wanted series is there (counters
// reach /metrics a moment after the work they count).
func checkMetrics(t *testing.T, role, url string, want []metricWant) {
	t.Helper()
	var text string
	missing := want
	deadline := time.Now().Add(30 * time.Second)
	for len(missing) > 0 && time.Now().Before(deadline) {
		text = scrape(t, url)
		missing = nil
		for _, w := range want {
			v, found := metricValue(text, w.name, w.labels...)
			if !found || w.positive && v <= 0 {
				missing = append(missing, w)
			}
		}
		if len(missing) > 0 {
			time.Sleep(200 * time.Millisecond)
		}
	}
	for _, w := range missing {
		v, found := metricValue(text, w.name, w.labels...)
		t.Errorf("%s /metrics: %s%v = %v (present %v); want present%s", role, w.name, w.labels, v, found,
			map[bool]string{true: " and above 0"}[w.positive])
	}
	if t.Failed() {
		t.Logf("%s /metrics:\n%s", role, text)
	}
}

// checkLogs fails when the log holds any of secrets.
func checkLogs(t *testing.T, role, logs string, secrets []string) {
	t.Helper()
	if !strings.Contains(logs, "level") {
		t.Errorf("%s logged nothing; the check below would pass vacuously", role)
	}
	for _, s := range secrets {
		for line := range strings.Lines(logs) {
			if strings.Contains(line, s) {
				t.Errorf("%s log contains %q: %s", role, s, line)
			}
		}
	}
}

func scrape(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %v", url, resp.StatusCode, err)
	}
	return string(b)
}

// metricValue sums the samples of name (Prometheus text format) whose
// labels include every one of labels.
func metricValue(text, name string, labels ...string) (sum float64, found bool) {
	for line := range strings.Lines(text) {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "#") {
			continue
		}
		series, value, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		metric, lbls, _ := strings.Cut(series, "{")
		if metric != name {
			continue
		}
		match := true
		for _, l := range labels {
			if !strings.Contains(lbls, l) {
				match = false
			}
		}
		if v, err := strconv.ParseFloat(value, 64); match && err == nil {
			sum += v
			found = true
		}
	}
	return sum, found
}

// startRoleProcess runs `bin args...` as its own process (one a test may
// SIGKILL) and waits until /readyz at addr answers 200.
func startRoleProcess(t *testing.T, bin, addr string, args ...string) *testenv.Process {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = []string{"PATH=/usr/bin:/bin"}
	p := testenv.Start(t, cmd)
	p.WaitFor(t, args[0]+" to answer", 30*time.Second, func() bool {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return p
}

// startRole runs `hookstream <role> args...` in-process until the test ends
// and waits until its /readyz answers 200. It returns the role's base URL
// and its log.
func startRole(t *testing.T, role string, envVars map[string]string, args ...string) (string, *testenv.Output) {
	t.Helper()
	addr := ""
	for i, a := range args {
		if a == "--http-addr" {
			addr = args[i+1]
		}
	}
	logs := &testenv.Output{}
	env := Env{Stdin: strings.NewReader(""), Stdout: io.Discard, Stderr: logs,
		LookupEnv: func(k string) (string, bool) {
			v, ok := envVars[k]
			if !ok && k == "HOOKSTREAM_ALLOW_UNSAFE_TOPICS" {
				return "true", true // the test broker is one: replication factor 1
			}
			return v, ok
		}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() { done <- Main(ctx, append([]string{role}, args...), env) }()
	t.Cleanup(func() {
		cancel()
		select {
		case code := <-done:
			if code != 0 {
				t.Errorf("%s exited %d: %s", role, code, logs.String())
			}
		case <-time.After(30 * time.Second):
			t.Errorf("%s did not stop: %s", role, logs.String())
		}
	})
	base := "http://" + addr
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return base, logs
			}
		}
		select {
		case code := <-done:
			t.Fatalf("%s exited %d before ready: %s", role, code, logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready: %v %s", role, err, logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// countingReceiver answers every webhook with status and counts the
// requests per webhook-id.
type countingReceiver struct {
	*httptest.Server
	mu  sync.Mutex
	got map[string]int
}

func newCountingReceiver(t *testing.T, status int) *countingReceiver {
	r := &countingReceiver{got: map[string]int{}}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		_, _ = io.Copy(io.Discard, req.Body)
		r.mu.Lock()
		r.got[req.Header.Get(signature.HeaderID)]++
		r.mu.Unlock()
		w.WriteHeader(status)
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *countingReceiver) ids() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return maps.Clone(r.got)
}

func produceRecord(t *testing.T, addr string, r *kgo.Record) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
		t.Fatalf("produce to %s: %v", r.Topic, err)
	}
}

// invalidEvent is an event whose data breaks its schema with marker, in a
// field whose schema message quotes the value it got.
func invalidEvent(marker string) *kgo.Record {
	return &kgo.Record{
		Topic:   topic.New(topic.DefaultPrefix).Events,
		Headers: []kgo.RecordHeader{{Key: record.HeaderTenant, Value: []byte("acme")}},
		Value: []byte(`{"id":"evt_invalid","event":"billing.payment_failed","timestamp":"2026-03-04T12:00:00Z",` +
			`"data":{"invoice_id":"inv_1","amount":49,"reason":"card_declined","currency":"` + marker + `"}}`),
	}
}

func randomHex(t *testing.T) string {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b[:])
}
