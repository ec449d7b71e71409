package testenv

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisCluster is a running Redis Cluster of real redis-server processes,
// every one a master (no replicas), together serving all 16384 slots.
type RedisCluster struct {
	Addrs  []string // one address per master
	Client *redis.ClusterClient
	nodes  []*Redis
}

// clusterSlots is the number of hash slots of a Redis Cluster.
const clusterSlots = 16384

// StartRedisCluster starts masters redis-servers in cluster mode on free
// ports, splits the slots among them evenly (CLUSTER ADDSLOTSRANGE), joins
// them (CLUSTER MEET) and waits until every node reports the cluster ok and
// the cluster client can write to every master. Everything stops when t
// ends.
func StartRedisCluster(t testing.TB, masters int) *RedisCluster {
	t.Helper()
	dir := t.TempDir()
	c := &RedisCluster{}
	var buses []int
	for i := 0; i < masters; i++ {
		port, bus := FreePort(t), FreePort(t)
		// The bus port is given explicitly: the default, port+10000, may
		// be taken or past 65535 for an ephemeral port.
		n := startRedis(t, port, []string{
			"--cluster-enabled", "yes",
			"--cluster-port", strconv.Itoa(bus),
			"--cluster-config-file", filepath.Join(dir, fmt.Sprintf("nodes-%d.conf", port)),
			"--cluster-node-timeout", "5000",
		}, &redis.Options{})
		c.nodes, buses = append(c.nodes, n), append(buses, bus)
		c.Addrs = append(c.Addrs, n.Addr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i, n := range c.nodes {
		lo, hi := i*clusterSlots/masters, (i+1)*clusterSlots/masters-1
		if err := n.Client.Do(ctx, "CLUSTER", "ADDSLOTSRANGE", lo, hi).Err(); err != nil {
			t.Fatalf("testenv: cluster addslotsrange on %s: %v", n.Addr, err)
		}
		if i == 0 {
			continue
		}
		host, port, _ := strings.Cut(n.Addr, ":")
		if err := c.nodes[0].Client.Do(ctx, "CLUSTER", "MEET", host, port, buses[i]).Err(); err != nil {
			t.Fatalf("testenv: cluster meet %s: %v", n.Addr, err)
		}
	}
	var err error
	for _, n := range c.nodes {
		for {
			var info string
			info, err = n.Client.ClusterInfo(ctx).Result()
			if err == nil && strings.Contains(info, "cluster_state:ok") && strings.Contains(info, "cluster_known_nodes:"+strconv.Itoa(masters)+"\r") {
				break
			}
			if ctx.Err() != nil {
				t.Fatalf("testenv: redis cluster node %s not ok: %v\n%s", n.Addr, err, info)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	c.Client = c.NewClient()
	t.Cleanup(func() { _ = c.Client.Close() })
	// Nodes agree on the slots a little after each reports ok: write
	// keys spread over the slots through the cluster client until all
	// succeed.
	for i := 0; i < 64; i++ {
		for c.Client.Set(ctx, "testenv:"+strconv.Itoa(i), "1", time.Minute).Err() != nil {
			if ctx.Err() != nil {
				t.Fatalf("testenv: redis cluster does not take writes")
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return c
}

// NewClient returns another cluster client of c (the caller closes it).
func (c *RedisCluster) NewClient() *redis.ClusterClient {
	return redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs})
}

// FlushAll runs FLUSHALL on every master, as an operator flushing the
// whole cluster, or every master coming back empty, would.
func (c *RedisCluster) FlushAll(t testing.TB) {
	t.Helper()
	err := c.Client.ForEachMaster(context.Background(), func(ctx context.Context, m *redis.Client) error {
		return m.FlushAll(ctx).Err()
	})
	if err != nil {
		t.Fatalf("testenv: cluster flushall: %v", err)
	}
}

// Masters returns how many masters hold at least one key: a test checks
// with it that its keys were in fact spread over the cluster.
func (c *RedisCluster) Masters(t testing.TB) int {
	t.Helper()
	n := 0
	for _, node := range c.nodes {
		size, err := node.Client.DBSize(context.Background()).Result()
		if err != nil {
			t.Fatalf("testenv: dbsize %s: %v", node.Addr, err)
		}
		if size > 0 {
			n++
		}
	}
	return n
}
