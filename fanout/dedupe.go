package fanout

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/redis/go-redis/v9"
)

// claim marks the duplicates among cands (see WithDedupe), in one pipelined
// round trip to Redis. Without dedupe configured nothing is a duplicate.
func (f *Fanout) claim(ctx context.Context, cands []candidate) error {
	if f.cfg.dedupe == nil || len(cands) == 0 {
		return nil
	}
	pipe := f.cfg.dedupe.Pipeline()
	gets := make([]*redis.StringCmd, len(cands))
	vals := make([]string, len(cands))
	for i := range cands {
		c := &cands[i]
		key := f.dedupeKey(c.tenant, c.id)
		vals[i] = strconv.Itoa(int(c.r.Partition)) + ":" + strconv.FormatInt(c.r.Offset, 10)
		// SET NX then GET rather than one SET NX GET, which needs
		// Redis 7: the GET sees either our claim or the earlier one.
		pipe.SetNX(ctx, key, vals[i], f.cfg.window)
		gets[i] = pipe.Get(ctx, key)
	}
	cmds, _ := pipe.Exec(ctx)
	for _, cmd := range cmds {
		if err := cmd.Err(); err != nil && !errors.Is(err, redis.Nil) {
			return fmt.Errorf("dedupe: %w", err)
		}
	}
	for i, get := range gets {
		// A key gone between SET and GET (flush, expiry) counts as
		// ours: when in doubt, deliver rather than drop.
		v, err := get.Result()
		cands[i].dup = err == nil && v != vals[i]
	}
	return nil
}

// dedupeKey is "<prefix>dedupe:<len(tenant)>:<tenant>:<id>"; the length
// keeps tenants containing ':' from colliding with other (tenant, id) pairs.
func (f *Fanout) dedupeKey(tenant, id string) string {
	b := f.keyBuf[:0]
	b = append(b, f.cfg.keyPrefix...)
	b = append(b, "dedupe:"...)
	b = strconv.AppendInt(b, int64(len(tenant)), 10)
	b = append(b, ':')
	b = append(b, tenant...)
	b = append(b, ':')
	b = append(b, id...)
	f.keyBuf = b
	return string(b)
}
