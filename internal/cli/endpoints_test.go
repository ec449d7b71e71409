package cli

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/segmentio/encoding/json"

	"github.com/hookstream/hookstream/internal/testenv"
)

// TestEndpointsCommand runs `hookstream api` on embedded Kafka and a real
// Redis, and manages endpoints through `hookstream endpoints`.
func TestEndpointsCommand(t *testing.T) {
	k := testenv.StartKafka(t)
	r := testenv.StartRedis(t)
	base, _ := startRole(t, "api", map[string]string{"HOOKSTREAM_API_TOKENS": "tok=acme,adm=*"},
		"--kafka-brokers", k.Addr, "--redis-url", r.URL, "--http-addr", freeAddr(t), "--shutdown-grace", "2s")

	// The URL and token come from the environment, as documented.
	cli := apiCLI(t, base, "tok")
	run := func(args ...string) (int, string, string) {
		t.Helper()
		return cli(append([]string{"endpoints"}, args...)...)
	}
	type endpoint struct {
		ID, URL, Secret, Description, Ordering string
		Events                                 []string
		Headers                                map[string]string
		RateLimit                              int `json:"rate_limit"`
		Version                                int
	}
	decode := func(s string) endpoint {
		t.Helper()
		var e endpoint
		if err := json.Unmarshal([]byte(s), &e); err != nil {
			t.Fatalf("output is not an endpoint: %v\n%s", err, s)
		}
		return e
	}

	code, out, errOut := run("create", "--url", "https://93.184.215.14/hook", "--events", "agent.*, call.started",
		"--header", "X-Api-Key=k1", "--header", "X-Env=prod", "--rate-limit", "3", "--description", "crm")
	if code != 0 {
		t.Fatalf("create exited %d: %s", code, errOut)
	}
	ep := decode(out)
	if !strings.HasPrefix(ep.ID, "ep_") || !strings.HasPrefix(ep.Secret, "whsec_") || len(ep.Events) != 2 ||
		ep.Headers["X-Env"] != "prod" || ep.RateLimit != 3 {
		t.Fatalf("create printed %s", out)
	}

	code, out, errOut = run("get", ep.ID)
	if code != 0 || decode(out).ID != ep.ID || strings.Contains(out, "whsec_") {
		t.Fatalf("get: %d %s %s", code, out, errOut)
	}
	// Flags may follow the id; only the flags given change.
	code, out, errOut = run("update", ep.ID, "--ordering", "none")
	if got := decode(out); code != 0 || got.Ordering != "none" || got.Description != "crm" || got.Version != 2 {
		t.Fatalf("update: %d %s %s", code, out, errOut)
	}
	code, out, errOut = run("rotate-secret", "--grace", "1h", ep.ID)
	if got := decode(out); code != 0 || got.Secret == "" || got.Secret == ep.Secret {
		t.Fatalf("rotate-secret: %d %s %s", code, out, errOut)
	}
	code, out, errOut = run("create", "--url", "https://93.184.215.14/two", "--events", "*")
	if code != 0 {
		t.Fatalf("second create exited %d: %s", code, errOut)
	}
	second := decode(out)
	// Pages of one: the first names the cursor of the next, the last has
	// "next": null.
	type page struct {
		Data []endpoint
		Next *string
	}
	list := func(args ...string) page {
		t.Helper()
		code, out, errOut := run(append([]string{"list", "--json"}, args...)...)
		var p page
		if err := json.Unmarshal([]byte(out), &p); code != 0 || err != nil || !strings.Contains(out, `"next":`) {
			t.Fatalf("list %v: %d %s %s", args, code, out, errOut)
		}
		return p
	}
	// The table, by default.
	code, out, errOut = run("list")
	if code != 0 || !strings.HasPrefix(out, "ID ") || !strings.Contains(out, ep.ID) || !strings.Contains(out, second.ID) ||
		!strings.Contains(out, "enabled") || !strings.Contains(out, "2 endpoints\n") {
		t.Fatalf("list: %d %q %s; want a table of both endpoints", code, out, errOut)
	}
	first := list("--limit", "1")
	if len(first.Data) != 1 || first.Data[0].ID != ep.ID || first.Next == nil {
		t.Fatalf("list --limit 1: %+v; want %s and a next cursor", first, ep.ID)
	}
	last := list("--limit", "1", "--cursor", *first.Next)
	if len(last.Data) != 1 || last.Data[0].ID != second.ID || last.Next != nil {
		t.Fatalf("list --cursor: %+v; want %s and next null", last, second.ID)
	}

	// API errors: exit 1 naming status, code, message and field.
	code, _, errOut = run("create", "--url", "ftp://x", "--events", "*")
	if code != 1 || !strings.Contains(errOut, "422 invalid") || !strings.Contains(errOut, "(field /url)") {
		t.Errorf("invalid create: exit %d, %q", code, errOut)
	}
	// Usage errors: exit 2.
	for _, args := range [][]string{{"get"}, {"create", "--url", "https://1.1.1.1/"}, {"frobnicate"}, {}} {
		if code, _, errOut := run(args...); code != 2 {
			t.Errorf("endpoints %v: exit %d (%s), want 2", args, code, errOut)
		}
	}

	code, out, errOut = run("delete", ep.ID)
	if code != 0 || out != "" {
		t.Fatalf("delete: %d %q %s", code, out, errOut)
	}
	code, _, errOut = run("get", ep.ID)
	if code != 1 || !strings.Contains(errOut, "404 not_found") {
		t.Errorf("get after delete: exit %d, %q", code, errOut)
	}
}

// apiCLI returns a runner of `hookstream args...` that finds the API's URL
// and token in the environment, as documented.
func apiCLI(t *testing.T, base, token string) func(args ...string) (code int, stdout, stderr string) {
	return func(args ...string) (int, string, string) {
		t.Helper()
		var out, errb bytes.Buffer
		env := Env{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb, LookupEnv: func(k string) (string, bool) {
			switch k {
			case "HOOKSTREAM_API_URL":
				return base, true
			case "HOOKSTREAM_TOKEN":
				return token, true
			}
			return "", false
		}}
		code := Main(context.Background(), args, env)
		return code, out.String(), errb.String()
	}
}
