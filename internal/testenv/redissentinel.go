package testenv

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisSentinel is a Sentinel-managed Redis: a primary, one replica and one
// Sentinel watching them under the name Master, all real redis-server
// processes on free ports of 127.0.0.1.
type RedisSentinel struct {
	Master   string // the monitored name
	Sentinel string // the Sentinel's address
	Primary  *Redis // the primary at start
	Replica  *Redis // its replica at start
	sentinel *redis.SentinelClient
}

// StartRedisSentinel starts a primary, a replica of it and a Sentinel
// (redis-server --sentinel) monitoring them with quorum 1, and waits until
// the Sentinel knows the replica, so that a failover can promote it.
func StartRedisSentinel(t testing.TB) *RedisSentinel {
	t.Helper()
	s := &RedisSentinel{Master: "hookstream"}
	s.Primary = StartRedis(t)
	host, port, _ := net.SplitHostPort(s.Primary.Addr)
	s.Replica = startRedis(t, FreePort(t), []string{"--replicaof", host, port}, &redis.Options{})

	// Sentinel rewrites its configuration file, so it must be a file of
	// its own.
	conf := filepath.Join(t.TempDir(), "sentinel.conf")
	text := fmt.Sprintf("sentinel monitor %s %s %s 1\nsentinel down-after-milliseconds %[1]s 1000\nsentinel failover-timeout %[1]s 5000\n", s.Master, host, port)
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	sport := FreePort(t)
	startRedis(t, sport, []string{conf, "--sentinel", "--port", strconv.Itoa(sport)}, &redis.Options{})
	s.Sentinel = net.JoinHostPort("127.0.0.1", strconv.Itoa(sport))
	s.sentinel = redis.NewSentinelClient(&redis.Options{Addr: s.Sentinel})
	t.Cleanup(func() { _ = s.sentinel.Close() })

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		replicas, err := s.sentinel.Replicas(ctx, s.Master).Result()
		if err == nil && len(replicas) == 1 && !strings.Contains(fmt.Sprint(replicas[0]), "disconnected") {
			return s
		}
		if ctx.Err() != nil {
			t.Fatalf("testenv: sentinel does not see the replica: %v %v", replicas, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// PrimaryAddr is the primary's address as the Sentinel reports it now.
func (s *RedisSentinel) PrimaryAddr(t testing.TB) string {
	t.Helper()
	addr, err := s.sentinel.GetMasterAddrByName(context.Background(), s.Master).Result()
	if err != nil {
		t.Fatalf("testenv: sentinel get-master-addr-by-name: %v", err)
	}
	return net.JoinHostPort(addr[0], addr[1])
}

// Failover makes the Sentinel promote the replica, and waits until it
// reports the replica as the primary and the replica takes writes.
func (s *RedisSentinel) Failover(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.sentinel.Failover(ctx, s.Master).Err(); err != nil {
		t.Fatalf("testenv: sentinel failover: %v", err)
	}
	for {
		if s.PrimaryAddr(t) == s.Replica.Addr {
			if role, err := s.Replica.Client.Do(ctx, "ROLE").Slice(); err == nil && len(role) > 0 && role[0] == "master" {
				return
			}
		}
		if ctx.Err() != nil {
			t.Fatalf("testenv: sentinel did not promote %s", s.Replica.Addr)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
