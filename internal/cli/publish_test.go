package cli

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/hookstream/hookstream/envelope"
	"github.com/hookstream/hookstream/internal/record"
	"github.com/hookstream/hookstream/internal/testenv"
	"github.com/hookstream/hookstream/topic"
)

var traceparent = regexp.MustCompile(`^00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]$`)

func runMain(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	// Goroutine-safe: go-redis logs from its pool's goroutines into the
	// role's logger while Main writes its own error.
	var out, errb testenv.Output
	env := Env{Stdin: strings.NewReader(stdin), Stdout: &out, Stderr: &errb, LookupEnv: func(string) (string, bool) { return "", false }}
	code = Main(context.Background(), args, env)
	return code, out.String(), errb.String()
}

func TestPublishCommand(t *testing.T) {
	k := testenv.StartKafka(t)
	names := k.CreateTopics(t, topic.DefaultPrefix, topic.DefaultPartitions)
	dir := t.TempDir()
	file := filepath.Join(dir, "paid.json")
	if err := os.WriteFile(file, []byte("{\n  \"invoice_id\": \"inv_1\",\n  \"amount\": 49.50,\n  \"currency\": \"EUR\"\n}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	base := []string{"publish", "--kafka-brokers", k.Addr}
	created := `{"agent_id":"agt_1","name":"Bot","model":"gpt-4o","created_by":42}`

	tests := []struct {
		name  string
		stdin string
		args  []string
		id    string // want this id; "" = generated
		key   string
		data  string
	}{
		{"inline", "", []string{"--type", "agent.created", "--data", created, "--tenant", "acme"}, "", "acme", created},
		{"file, id and key", "", []string{"--type", "billing.payment_succeeded", "--data", "@" + file, "--tenant", "acme", "--id", "inv_1:paid", "--key", "inv_1"},
			"inv_1:paid", "inv_1", `{"invoice_id":"inv_1","amount":49.50,"currency":"EUR"}`},
		{"stdin", created, []string{"--type", "agent.created", "--data", "@-", "--tenant", "beta"}, "", "beta", created},
	}
	want := map[string][3]string{} // id -> key, tenant, data
	for _, tt := range tests {
		code, stdout, stderr := runMain(t, tt.stdin, append(base, tt.args...)...)
		if code != 0 {
			t.Fatalf("%s: exit %d: %s", tt.name, code, stderr)
		}
		id := strings.TrimSpace(stdout)
		if tt.id != "" && id != tt.id || tt.id == "" && !regexp.MustCompile(`^evt_[0-9a-f]{24}$`).MatchString(id) {
			t.Fatalf("%s: printed %q", tt.name, stdout)
		}
		tenant := tt.args[5]
		want[id] = [3]string{tt.key, tenant, tt.data}
	}
	got := k.ReadAll(t, names.Events)
	if len(got) != len(want) {
		t.Fatalf("read %d records, want %d", len(got), len(want))
	}
	for _, r := range got {
		e, err := envelope.Decode(r.Value, 0)
		if err != nil {
			t.Fatal(err)
		}
		w := want[e.ID]
		if string(r.Key) != w[0] || string(record.Header(r, record.HeaderTenant)) != w[1] || string(e.Data) != w[2] {
			t.Errorf("event %s: key %q tenant %q data %s; want %q", e.ID, r.Key, record.Header(r, record.HeaderTenant), e.Data, w)
		}
		// The publish span's: fanout and the deliverer continue its trace.
		if tp := record.Header(r, "traceparent"); !traceparent.Match(tp) {
			t.Errorf("event %s: traceparent %q, want a W3C traceparent", e.ID, tp)
		}
	}
}

func TestPublishCommandErrors(t *testing.T) {
	k := testenv.StartKafka(t)
	k.CreateTopics(t, topic.DefaultPrefix, topic.DefaultPartitions)
	ok := []string{"--type", "agent.created", "--data", `{"agent_id":"a","name":"n","model":"m","created_by":1}`, "--tenant", "acme"}
	with := func(flag, value string) []string {
		out := append([]string{"publish", "--kafka-brokers", k.Addr}, ok...)
		for i := range out {
			if out[i] == flag {
				out[i+1] = value
				return out
			}
		}
		return append(out, flag, value)
	}
	tests := []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"no type", with("--type", ""), 2, "--type is required"},
		{"no data", with("--data", ""), 2, "--data is required"},
		{"no tenant", with("--tenant", ""), 2, "--tenant is required"},
		{"data not JSON", with("--data", "{nope"), 2, "--data is not valid JSON"},
		{"data file missing", with("--data", "@/nonexistent/x.json"), 2, "--data @/nonexistent/x.json"},
		{"unknown type", with("--type", "agent.exploded"), 2, "--type: schemas: unknown event type \"agent.exploded\"; known types: agent.budget_alert"},
		{"schema violation", with("--data", `{"agent_id":"a","name":"n","model":"m","created_by":"me"}`), 2, "--data: schema violation at /data/created_by"},
		{"bad tenant", with("--tenant", "a b"), 2, "--tenant: producer: invalid tenant"},
		{"bad id", with("--id", "evt/1"), 2, "--id:"},
		{"unknown flag", with("--colour", "red"), 2, "flag provided but not defined"},
		{"missing topic", with("--topic-prefix", "elsewhere."), 1, "topic elsewhere.events does not exist"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runMain(t, "", tt.args...)
			if code != tt.code || !strings.Contains(stderr, tt.msg) || stdout != "" {
				t.Fatalf("exit %d, stdout %q, stderr %q; want exit %d mentioning %q", code, stdout, stderr, tt.code, tt.msg)
			}
		})
	}
	if got := k.ReadAll(t, topic.New(topic.DefaultPrefix).Events); len(got) != 0 {
		t.Fatalf("failed publishes wrote %d records", len(got))
	}
}
