package cli

import (
	"strings"
	"testing"
	"time"

	"github.com/segmentio/encoding/json"

	"github.com/hookstream/hookstream/internal/testenv"
)

// TestJobsCommandsPrintTables: `jobs list` and `jobs get` print tables,
// like the other list and get commands, and the API's JSON with --json.
func TestJobsCommandsPrintTables(t *testing.T) {
	k := testenv.StartKafka(t)
	r := testenv.StartRedis(t)
	base, _ := startRole(t, "api", map[string]string{"HOOKSTREAM_API_TOKENS": "tok=acme"},
		"--kafka-brokers", k.Addr, "--redis-url", r.URL, "--http-addr", freeAddr(t), "--shutdown-grace", "2s")
	run := apiCLI(t, base, "tok")
	code, out, errOut := run("endpoints", "create", "--url", "https://93.184.215.14/hook", "--events", "agent.*")
	var ep struct{ ID string }
	if err := json.Unmarshal([]byte(out), &ep); code != 0 || err != nil {
		t.Fatalf("endpoints create: exit %d, %v: %s", code, err, errOut)
	}
	since := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)
	code, out, errOut = run("endpoints", "replay", ep.ID, "--since", since, "--wait")
	var job struct{ ID, State string }
	if err := json.Unmarshal([]byte(out), &job); code != 0 || err != nil || job.State != "done" {
		t.Fatalf("endpoints replay --wait: exit %d, %v: %s %s", code, err, out, errOut)
	}

	for _, c := range []struct {
		args []string
		want []string // in the table, in this order
	}{
		{[]string{"jobs", "list"}, []string{"CREATED", "JOB", "KIND", "STATE", job.ID, "replay", ep.ID, "done", "0/0", "1 jobs"}},
		{[]string{"jobs", "get", job.ID}, []string{"job", job.ID, "kind", "replay", "endpoint", ep.ID, "window", since, "state", "done", "processed", "0 of 0"}},
	} {
		code, out, errOut := run(c.args...)
		if code != 0 || json.Valid([]byte(out)) {
			t.Fatalf("%s: exit %d, want a table, got:\n%s%s", strings.Join(c.args, " "), code, out, errOut)
		}
		rest := out
		for _, w := range c.want {
			i := strings.Index(rest, w)
			if i < 0 {
				t.Fatalf("%s: %q missing (or out of order) in:\n%s", strings.Join(c.args, " "), w, out)
			}
			rest = rest[i+len(w):]
		}
		code, out, errOut = run(append(c.args, "--json")...)
		var v struct {
			ID   string
			Data []struct{ ID string }
		}
		if err := json.Unmarshal([]byte(out), &v); code != 0 || err != nil || v.ID != job.ID && (len(v.Data) != 1 || v.Data[0].ID != job.ID) {
			t.Fatalf("%s --json: exit %d, %v, want the API's JSON of %s:\n%s%s", strings.Join(c.args, " "), code, err, job.ID, out, errOut)
		}
	}
}
