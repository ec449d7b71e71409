package cli

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hookstream/hookstream/internal/testenv"
)

func TestRedisLoggerRateLimit(t *testing.T) {
	tests := []struct {
		name  string
		at    []time.Duration // when go-redis logs, from the start
		lines []string        // the suppressed counts of the lines written
	}{
		{"one", []time.Duration{0}, []string{`"suppressed":0`}},
		{"burst", []time.Duration{0, time.Millisecond, 2 * time.Second}, []string{`"suppressed":0`}},
		{"after the interval", []time.Duration{0, time.Second, 2 * time.Second, 10 * time.Second, 11 * time.Second, 21 * time.Second},
			[]string{`"suppressed":0`, `"suppressed":2`, `"suppressed":1`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
			var now time.Time
			l := newRedisLogger(slog.New(slog.NewJSONHandler(&buf, nil)), 10*time.Second)
			l.now = func() time.Time { return now }
			for _, d := range tt.at {
				now = start.Add(d)
				l.Printf(context.Background(), "redis: connection pool: failed to dial after %d attempts: %v", 5, "refused")
			}
			got := strings.Split(strings.TrimSpace(buf.String()), "\n")
			if len(got) != len(tt.lines) {
				t.Fatalf("%d lines, want %d: %s", len(got), len(tt.lines), buf.String())
			}
			for i, want := range tt.lines {
				if !strings.Contains(got[i], want) || !strings.Contains(got[i], `"detail":"connection pool: failed to dial after 5 attempts: refused"`) {
					t.Errorf("line %d = %s, want %s and the detail", i, got[i], want)
				}
			}
		})
	}
}

// TestRedisLoggerWhileRedisDown: with Redis gone, go-redis's own complaints
// reach the role's JSON log, and only a few of them.
func TestRedisLoggerWhileRedisDown(t *testing.T) {
	rd := testenv.StartRedis(t)
	var buf testenv.Output
	redis.SetLogger(newRedisLogger(slog.New(slog.NewJSONHandler(&buf, nil)), 500*time.Millisecond))
	t.Cleanup(func() { useRedisLogger(slog.New(slog.NewJSONHandler(os.Stderr, nil))) })
	rdb := redis.NewClient(&redis.Options{Addr: rd.Addr})
	defer rdb.Close()
	rd.Stop()
	const down = 2 * time.Second
	failed := 0
	for end := time.Now().Add(down); time.Now().Before(end); {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		if rdb.Ping(ctx).Err() != nil {
			failed++
		}
		cancel()
		time.Sleep(10 * time.Millisecond)
	}
	logs := buf.String()
	lines := strings.Count(logs, "\n")
	// At most one line per 500ms, plus the first.
	if lines == 0 || lines > int(down/(500*time.Millisecond))+1 {
		t.Errorf("%d pings failed, %d log lines, want 1..%d: %s", failed, lines, int(down/(500*time.Millisecond))+1, logs)
	}
	for _, line := range notSlog(logs, "json") {
		t.Errorf("not a slog JSON line: %s", line)
	}
}
