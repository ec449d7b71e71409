package cli

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/hookstream/hookstream/internal/testenv"
	"github.com/hookstream/hookstream/topic"
)

// TestRolesOverTLSAndSCRAM runs the api role and the publish command
// against a cluster that takes only TLS + SCRAM, the password coming from a
// file named by the environment, as a Kubernetes Secret is mounted; neither
// the help, the logs nor an authentication error ever show the password.
func TestRolesOverTLSAndSCRAM(t *testing.T) {
	k := testenv.StartSecureKafka(t, 1)
	r := testenv.StartRedis(t)
	const pw = "s3cret-pa55-1f2e"
	k.AddUser(t, "svc", pw)
	k.Grant(t, aclsAll("User:svc"))
	pwFile := filepath.Join(t.TempDir(), "password")
	if err := os.WriteFile(pwFile, []byte(pw+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	envVars := map[string]string{
		"HOOKSTREAM_API_TOKENS":               "tok=acme",
		"HOOKSTREAM_KAFKA_BROKERS":            strings.Join(k.Addrs, ","),
		"HOOKSTREAM_KAFKA_TLS":                "true",
		"HOOKSTREAM_KAFKA_TLS_CA":             k.CAFile,
		"HOOKSTREAM_KAFKA_SASL_MECHANISM":     "SCRAM-SHA-256",
		"HOOKSTREAM_KAFKA_SASL_USERNAME":      "svc",
		"HOOKSTREAM_KAFKA_SASL_PASSWORD_FILE": pwFile,
		"HOOKSTREAM_ALLOW_UNSAFE_TOPICS":      "true", // one broker
	}
	base, logs := startRole(t, "api", envVars, "--redis-url", r.URL, "--http-addr", freeAddr(t), "--shutdown-grace", "2s")
	req, _ := http.NewRequest(http.MethodPost, base+"/v1/events",
		strings.NewReader(`{"event":"agent.created","id":"evt-sec-1","data":{"agent_id":"a","name":"n","model":"m","created_by":1}}`))
	req.Header.Set("Authorization", "Bearer tok")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 202 {
		t.Fatalf("POST /v1/events over TLS + SCRAM: %d %s", resp.StatusCode, body)
	}

	pub := []string{"publish", "--type", "agent.created", "--tenant", "acme", "--timeout", "10s",
		"--data", `{"agent_id":"a","name":"n","model":"m","created_by":1}`}
	lookup := func(extra map[string]string) func(string) (string, bool) {
		return func(key string) (string, bool) {
			if v, ok := extra[key]; ok {
				return v, true
			}
			v, ok := envVars[key]
			return v, ok
		}
	}
	run := func(extra map[string]string, args ...string) (int, string) {
		var out bytes.Buffer
		code := Main(context.Background(), args, Env{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &out, LookupEnv: lookup(extra)})
		return code, out.String()
	}
	if code, out := run(nil, pub...); code != 0 {
		t.Fatalf("publish over TLS + SCRAM: exit %d: %s", code, out)
	}
	if n := len(k.ReadAll(t, topic.New(topic.DefaultPrefix).Events)); n != 2 {
		t.Fatalf("events topic holds %d records, want 2", n)
	}
	code, badOut := run(map[string]string{"HOOKSTREAM_KAFKA_SASL_PASSWORD_FILE": "", "HOOKSTREAM_KAFKA_SASL_PASSWORD": pw + "x"}, pub...)
	if code == 0 {
		t.Fatal("publish with a wrong password succeeded")
	}
	_, help := run(map[string]string{"HOOKSTREAM_KAFKA_SASL_PASSWORD": pw}, "api", "--help")
	if !strings.Contains(help, "HOOKSTREAM_KAFKA_SASL_PASSWORD_FILE") {
		t.Fatalf("help does not list the password file variable: %s", help)
	}
	checkLogs(t, "api", logs.String(), []string{pw})
	for name, s := range map[string]string{"failed publish": badOut, "help": help} {
		if strings.Contains(s, pw) {
			t.Errorf("%s shows the password: %s", name, s)
		}
	}
}

// aclsAll grants principal every operation on everything.
func aclsAll(principal string) *kadm.ACLBuilder {
	return kadm.NewACLs().Topics("*").Groups("*").TransactionalIDs("*").Clusters().
		Allow(principal).Operations(kadm.OpAll).ResourcePatternType(kadm.ACLPatternLiteral)
}
