package cli

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// redisLogEvery is the most often go-redis may log: while Redis is down
// its pool logs every failed dial, a few lines a second per process.
const redisLogEvery = 10 * time.Second

// redisLogger routes go-redis's own log lines into the role's slog logger,
// at most one line per interval; the lines dropped in between are counted
// on the next one.
type redisLogger struct {
	log   *slog.Logger
	every time.Duration
	now   func() time.Time

	mu      sync.Mutex
	last    time.Time
	dropped int
}

func newRedisLogger(log *slog.Logger, every time.Duration) *redisLogger {
	return &redisLogger{log: log, every: every, now: time.Now}
}

// Printf implements go-redis's logging interface.
func (l *redisLogger) Printf(ctx context.Context, format string, v ...any) {
	l.mu.Lock()
	now := l.now()
	if !l.last.IsZero() && now.Sub(l.last) < l.every {
		l.dropped++
		l.mu.Unlock()
		return
	}
	dropped := l.dropped
	l.last, l.dropped = now, 0
	l.mu.Unlock()
	msg := strings.TrimSpace(strings.TrimPrefix(fmt.Sprintf(format, v...), "redis: "))
	l.log.WarnContext(ctx, "redis client", "detail", msg, "suppressed", dropped)
}

// useRedisLogger makes go-redis log through log. go-redis has one logger
// per process, so the last role started in a process wins; each process
// runs one role except `hookstream dev`, whose roles share a handler.
func useRedisLogger(log *slog.Logger) {
	redis.SetLogger(newRedisLogger(log, redisLogEvery))
}
