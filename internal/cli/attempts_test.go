package cli

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/encoding/json"

	"github.com/hookstream/hookstream/deliverer"
	"github.com/hookstream/hookstream/internal/deliverylog"
	"github.com/hookstream/hookstream/internal/testenv"
)

// TestAttemptsCommand runs `hookstream api` on embedded Kafka and a real
// Redis holding a delivery log, and lists it with `hookstream attempts`.
func TestAttemptsCommand(t *testing.T) {
	k := testenv.StartKafka(t)
	r := testenv.StartRedis(t)
	base, _ := startRole(t, "api", map[string]string{"HOOKSTREAM_API_TOKENS": "tok=acme"},
		"--kafka-brokers", k.Addr, "--redis-url", r.URL, "--http-addr", freeAddr(t), "--shutdown-grace", "2s")
	run := apiCLI(t, base, "tok")
	code, out, errOut := run("endpoints", "create", "--url", "https://93.184.215.14/hook", "--events", "*")
	if code != 0 {
		t.Fatalf("create exited %d: %s", code, errOut)
	}
	var ep struct{ ID string }
	if err := json.Unmarshal([]byte(out), &ep); err != nil {
		t.Fatal(err)
	}
	ix := deliverylog.NewIndex(r.Client, 0)
	now := time.Now().UTC()
	for i, status := range []int{500, 200} {
		a := deliverer.Attempt{Tenant: "acme", EndpointID: ep.ID, EventID: "evt_1", EventType: "agent.created",
			Attempt: i + 1, Status: status, Outcome: "failed", ErrorClass: "http_status", Trigger: "scheduled", At: now.Add(time.Duration(i) * time.Millisecond)}
		if status == 200 {
			a.Outcome, a.ErrorClass = "delivered", ""
		}
		if err := ix.Add(context.Background(), 0, int64(i), a); err != nil {
			t.Fatal(err)
		}
	}

	code, out, errOut = run("attempts", "list", "--endpoint", ep.ID)
	if code != 0 {
		t.Fatalf("attempts list exited %d: %s", code, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) < 4 || !strings.HasPrefix(lines[0], "AT") || !strings.Contains(lines[1], "delivered") ||
		!strings.Contains(lines[2], "http_status") || !strings.Contains(lines[2], "500") || !strings.Contains(out, "2 attempts, window") {
		t.Errorf("table:\n%s", out)
	}

	code, out, errOut = run("attempts", "list", "--event", "evt_1", "--code-class", "5xx", "--json")
	var page struct {
		Data []struct {
			StatusCode int `json:"status_code"`
		}
	}
	if code != 0 || json.Unmarshal([]byte(out), &page) != nil || len(page.Data) != 1 || page.Data[0].StatusCode != 500 {
		t.Errorf("--json --code-class 5xx: exit %d, %s %s", code, out, errOut)
	}

	code, out, errOut = run("events", "get", "evt_1")
	if code != 0 || !strings.Contains(out, "evt_1 agent.created: delivered") || !strings.Contains(out, ep.ID) || !strings.Contains(out, "delivered") {
		t.Errorf("events get: exit %d\n%s%s", code, out, errOut)
	}
	if code, _, errOut := run("events", "get", "evt_nope"); code != 1 || !strings.Contains(errOut, "404") {
		t.Errorf("events get of an unknown event: exit %d, %s", code, errOut)
	}

	bad := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"attempts", "list"}, 2, "exactly one of --endpoint and --event"},
		{[]string{"attempts", "list", "--endpoint", ep.ID, "--event", "evt_1"}, 2, "exactly one"},
		{[]string{"attempts", "list", "--endpoint", ep.ID, "--code-class", "9xx"}, 1, "/code_class"},
		{[]string{"attempts", "list", "--endpoint", "ep_nope"}, 1, "404"},
	}
	for _, b := range bad {
		if code, _, errOut := run(b.args...); code != b.code || !strings.Contains(errOut, b.want) {
			t.Errorf("%v: exit %d, %q; want %d naming %q", b.args, code, errOut, b.code, b.want)
		}
	}
}
