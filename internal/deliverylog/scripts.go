package deliverylog

import (
	"context"
	"strings"

	"github.com/redis/go-redis/v9"
)

// scripts are the Lua scripts index writes run by their SHA. Each touches
// keys of one tenant only, so it runs in one Cluster slot.
var scripts = []*redis.Script{attemptsScript, deadScript}

// pipelined runs queue's commands in one pipeline. Scripts run by SHA: if
// Redis does not know them (restarted, new), they are loaded and the whole
// pipeline runs again. That is safe: the other writes are idempotent, and
// the attempts' states become known only when their scripts have run
// (poll.settle), so the rerun works them out the same.
func (ix *Index) pipelined(ctx context.Context, queue func(p redis.Pipeliner) error) error {
	run := func() error {
		_, err := ix.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			return queue(p)
		})
		return err
	}
	err := run()
	if err == nil || !strings.HasPrefix(err.Error(), "NOSCRIPT") {
		return err
	}
	for _, s := range scripts {
		if err := s.Load(ctx, ix.rdb).Err(); err != nil {
			return err
		}
	}
	return run()
}
