package cli

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hookstream/hookstream/internal/testenv"
)

// TestFanoutReadinessGroup: of two `hookstream fanout` on an events topic
// of one partition, the one the group gives nothing fails /readyz (check
// "group") once past its bound, twice the session plus rebalance timeouts;
// the holder stays ready.
func TestFanoutReadinessGroup(t *testing.T) {
	k := testenv.StartKafka(t)
	rd := testenv.StartRedis(t)
	flags := []string{"--kafka-brokers", k.Addr, "--redis-url", rd.URL, "--shutdown-grace", "5s",
		"--partitions-events", "1", "--session-timeout", "500ms", "--rebalance-timeout", "1s"}
	a, _ := startRole(t, "fanout", nil, append(flags, "--http-addr", freeAddr(t), "--instance-id", "fanout-a")...)
	b, _ := startRole(t, "fanout", nil, append(flags, "--http-addr", freeAddr(t), "--instance-id", "fanout-b")...)
	readyz := func(base string) (int, string) {
		resp, err := http.Get(base + "/readyz")
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	var idle, holder string
	testenv.Eventually(t, 30*time.Second, "one fanout unready for want of a partition", func() bool {
		for _, p := range [][2]string{{a, b}, {b, a}} {
			if code, body := readyz(p[0]); code == http.StatusServiceUnavailable && strings.Contains(body, "no partitions assigned") {
				idle, holder = p[0], p[1]
				return true
			}
		}
		return false
	})
	code, body := readyz(idle)
	if !strings.Contains(body, `"group"`) || !strings.Contains(body, `"kafka":"ok"`) {
		t.Errorf("idle fanout /readyz: %d %s, want the group check failing and Kafka ok", code, body)
	}
	if code, body := readyz(holder); code != http.StatusOK {
		t.Errorf("holder /readyz: %d %s", code, body)
	}
}
