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
// pipeline runs again, which is safe as every index write is idempotent.
func (ix *Index) pipelined(ctx context.Context, queue func(p redis.Pipeliner)) error {
	run := func() error {
		_, err := ix.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			queue(p)
			return nil
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
