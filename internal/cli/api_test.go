package cli

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/hookstream/hookstream/envelope"
	"github.com/hookstream/hookstream/internal/record"
	"github.com/hookstream/hookstream/internal/testenv"
	"github.com/hookstream/hookstream/topic"
)

func TestAPICommand(t *testing.T) {
	k := testenv.StartKafka(t)
	r := testenv.StartRedis(t)
	base, _ := startRole(t, "api", map[string]string{"HOOKSTREAM_API_TOKENS": "tok=acme"},
		"--kafka-brokers", k.Addr, "--redis-url", r.URL, "--http-addr", freeAddr(t),
		"--partitions-events", "3", "--partitions-deliveries", "2", "--shutdown-grace", "2s")

	req, _ := http.NewRequest(http.MethodPost, base+"/v1/events",
		strings.NewReader(`{"event":"agent.created","id":"evt-cli-1","data":{"agent_id":"a","name":"n","model":"m","created_by":1}}`))
	req.Header.Set("Authorization", "Bearer tok")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 202 || string(bytes.TrimSpace(body)) != `{"id":"evt-cli-1"}` {
		t.Fatalf("POST /v1/events: %d %s", resp.StatusCode, body)
	}
	for _, path := range []string{"/v1/event-types", "/healthz", "/metrics"} {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("GET %s: %d", path, resp.StatusCode)
		}
	}

	names := topic.New(topic.DefaultPrefix)
	got := k.ReadAll(t, names.Events)
	if len(got) != 1 || string(record.Header(got[0], record.HeaderTenant)) != "acme" {
		t.Fatalf("events topic: %d records", len(got))
	}
	if e, err := envelope.Decode(got[0].Value, 0); err != nil || e.ID != "evt-cli-1" {
		t.Fatalf("event %+v: %v", e, err)
	}
	// Topics were created with the requested partition counts.
	for topicName, want := range map[string]int{names.Events: 3, names.Deliveries: 2, names.Retries: 2} {
		n := partitions(t, k, topicName)
		if n != want {
			t.Errorf("%s has %d partitions, want %d", topicName, n, want)
		}
	}
}

func partitions(t *testing.T, k *testenv.Kafka, name string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	details, err := kadm.NewClient(k.Client(t)).ListTopics(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	return len(details[name].Partitions)
}

func TestAPICommandUsage(t *testing.T) {
	tests := []struct {
		name string
		args []string
		msg  string
	}{
		{"bad tokens", []string{"--api-tokens", "justatoken"}, "--api-tokens"},
		{"event size", []string{"--max-event-size", "0"}, "--max-event-size"},
		{"event size too big", []string{"--max-event-size", "2000000"}, "--max-event-size"},
		{"backend timeout", []string{"--backend-timeout", "1ms"}, "--backend-timeout"},
		{"partitions", []string{"--partitions-events", "0"}, "--partitions-events"},
		{"deliveries partitions", []string{"--partitions-deliveries", "-2"}, "--partitions-deliveries"},
		{"redis url", []string{"--redis-url", "http://x"}, "--redis-url"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, stderr := runMain(t, "", append([]string{"api"}, tt.args...)...)
			if code != 2 || !strings.Contains(stderr, tt.msg) {
				t.Fatalf("exit %d, stderr %q; want 2 naming %s", code, stderr, tt.msg)
			}
		})
	}
}
