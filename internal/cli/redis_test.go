package cli

import (
	"context"
	"flag"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hookstream/hookstream/internal/testenv"
	"github.com/hookstream/hookstream/schemas"
	"github.com/hookstream/hookstream/subscription"
	"github.com/hookstream/hookstream/topic"
)

const testRedisSecret = "s3cr3t-never-logged"

// parseRedisFlags parses args and env as a role's command does.
func parseRedisFlags(t *testing.T, args []string, env map[string]string) (*redisFlags, error) {
	t.Helper()
	var r redisFlags
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	r.register(fs)
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	if err := parse(fs, Env{Stderr: io.Discard, LookupEnv: lookup}, args); err != nil {
		return nil, err
	}
	return &r, r.validate()
}

func TestRedisFlags(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		check   func(o *redis.UniversalOptions) bool
		wantErr string // part of the usage error; "" = valid
	}{
		{name: "default single node", check: func(o *redis.UniversalOptions) bool {
			return slices.Equal(o.Addrs, []string{"127.0.0.1:6379"}) && !o.IsClusterMode && o.MasterName == "" && o.TLSConfig == nil
		}},
		{name: "url with ACL user, db and TLS", args: []string{"--redis-url", "rediss://app:" + testRedisSecret + "@redis.internal:6380/2"},
			check: func(o *redis.UniversalOptions) bool {
				return o.Username == "app" && o.Password == testRedisSecret && o.DB == 2 && o.TLSConfig != nil && o.TLSConfig.ServerName == "redis.internal"
			}},
		{name: "cluster from env", env: map[string]string{"HOOKSTREAM_REDIS_CLUSTER_ADDRS": "a:6379,b:6379", "HOOKSTREAM_REDIS_USERNAME": "app", "HOOKSTREAM_REDIS_TLS": "true"},
			check: func(o *redis.UniversalOptions) bool {
				return o.IsClusterMode && slices.Equal(o.Addrs, []string{"a:6379", "b:6379"}) && o.Username == "app" && o.TLSConfig != nil
			}},
		{name: "sentinel", args: []string{"--redis-sentinel-master", "mymaster", "--redis-sentinel-addrs", "s1:26379,s2:26379", "--redis-sentinel-password", testRedisSecret},
			check: func(o *redis.UniversalOptions) bool {
				return o.MasterName == "mymaster" && len(o.Addrs) == 2 && o.SentinelPassword == testRedisSecret && !o.IsClusterMode
			}},
		{name: "tls server name implies tls", args: []string{"--redis-tls-server-name", "redis.example"},
			check: func(o *redis.UniversalOptions) bool {
				return o.TLSConfig != nil && o.TLSConfig.ServerName == "redis.example"
			}},
		{name: "bad url never quoted", args: []string{"--redis-url", "redis://u:" + testRedisSecret + "@host:notaport/0"}, wantErr: "--redis-url is not a valid Redis URL"},
		{name: "cluster and url", args: []string{"--redis-cluster-addrs", "a:1", "--redis-url", "redis://b:2/0"}, wantErr: "not both"},
		{name: "cluster and sentinel", args: []string{"--redis-cluster-addrs", "a:1", "--redis-sentinel-master", "m", "--redis-sentinel-addrs", "s:1"}, wantErr: "exclude each other"},
		{name: "sentinel without addrs", args: []string{"--redis-sentinel-master", "m"}, wantErr: "--redis-sentinel-master and --redis-sentinel-addrs go together"},
		{name: "password twice", args: []string{"--redis-password", testRedisSecret, "--redis-password-file", "/x"}, wantErr: "not both"},
		{name: "cert without key", args: []string{"--redis-tls-cert", "/c.pem"}, wantErr: "go together"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := parseRedisFlags(t, tt.args, tt.env)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want one containing %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), testRedisSecret) {
					t.Fatalf("the error quotes the password: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			o, err := r.options()
			if err != nil || !tt.check(o) {
				t.Fatalf("options = %+v, %v", o, err)
			}
		})
	}
}

// TestRedisClientModes connects through the flags, as a role does, to a
// real redis-server with TLS, a client certificate and an ACL user whose
// password comes from a file; to a real Redis Cluster; and to nothing
// else when the password is wrong.
func TestRedisClientModes(t *testing.T) {
	tlsRedis := testenv.StartRedisTLS(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := tlsRedis.Client.Do(ctx, "ACL", "SETUSER", "hookstream", "on", ">"+testRedisSecret, "~*", "&*", "+@all").Err(); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	good, bad := filepath.Join(dir, "password"), filepath.Join(dir, "wrong")
	for f, v := range map[string]string{good: testRedisSecret + "\n", bad: "nope\n"} {
		if err := os.WriteFile(f, []byte(v), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cluster := testenv.StartRedisCluster(t, 3)
	tlsArgs := []string{"--redis-url", "rediss://" + tlsRedis.Addr + "/0", "--redis-username", "hookstream",
		"--redis-tls-ca", tlsRedis.CA, "--redis-tls-cert", tlsRedis.Cert, "--redis-tls-key", tlsRedis.Key}
	tests := []struct {
		name   string
		args   []string
		env    map[string]string
		wantOK bool
	}{
		{"tls, client certificate, ACL user, password file", tlsArgs, map[string]string{"HOOKSTREAM_REDIS_PASSWORD_FILE": good}, true},
		{"wrong password", tlsArgs, map[string]string{"HOOKSTREAM_REDIS_PASSWORD_FILE": bad}, false},
		{"no client certificate", []string{"--redis-url", "rediss://hookstream@" + tlsRedis.Addr + "/0", "--redis-tls-ca", tlsRedis.CA},
			map[string]string{"HOOKSTREAM_REDIS_PASSWORD_FILE": good}, false},
		{"cluster", nil, map[string]string{"HOOKSTREAM_REDIS_CLUSTER_ADDRS": cluster.Addrs[0]}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := parseRedisFlags(t, tt.args, tt.env)
			if err != nil {
				t.Fatal(err)
			}
			rdb, err := r.client()
			if err != nil {
				t.Fatal(err)
			}
			defer rdb.Close()
			// Keys on different masters' slots: only a cluster client
			// routes both (a single-node one gets MOVED).
			err = rdb.MSet(ctx, "{a}k", "1").Err()
			if err == nil {
				err = rdb.Set(ctx, "{b}k", "2", time.Minute).Err()
			}
			if tt.wantOK != (err == nil) {
				t.Fatalf("writing through the client: %v, want ok=%v", err, tt.wantOK)
			}
			if err != nil && strings.Contains(err.Error(), testRedisSecret) {
				t.Fatalf("the error quotes the password: %v", err)
			}
		})
	}
}

// TestRedisURLKeepsItsParameters: a single node's URL keeps what go-redis
// reads from it beyond the address (pool and timeouts, a unix socket).
func TestRedisURLKeepsItsParameters(t *testing.T) {
	for _, tt := range []struct {
		url   string
		check func(o *redis.Options) bool
	}{
		{"redis://h:6379/3?pool_size=7&dial_timeout=2s", func(o *redis.Options) bool {
			return o.PoolSize == 7 && o.DialTimeout == 2*time.Second && o.DB == 3 && o.Addr == "h:6379"
		}},
		{"unix:///run/redis.sock?db=2", func(o *redis.Options) bool { return o.Network == "unix" && o.Addr == "/run/redis.sock" && o.DB == 2 }},
	} {
		r, err := parseRedisFlags(t, []string{"--redis-url", tt.url, "--redis-username", "u"}, nil)
		if err != nil {
			t.Fatal(err)
		}
		rdb, err := r.client()
		if err != nil {
			t.Fatal(err)
		}
		c, ok := rdb.(*redis.Client)
		if !ok || !tt.check(c.Options()) || c.Options().Username != "u" {
			t.Errorf("%s: client options %+v", tt.url, c.Options())
		}
		_ = rdb.Close()
	}
}

func TestRedisPasswordFileErrors(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{empty, filepath.Join(dir, "missing")} {
		r, err := parseRedisFlags(t, []string{"--redis-password-file", f}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.client(); err == nil || !strings.Contains(err.Error(), "--redis-password-file") {
			t.Errorf("client() with password file %s = %v, want an error naming the flag", f, err)
		}
	}
}

// TestRedisSentinelFailover reaches Redis through a Sentinel, as a role
// does with --redis-sentinel-master and --redis-sentinel-addrs, and keeps
// working after the Sentinel promotes the replica.
func TestRedisSentinelFailover(t *testing.T) {
	s := testenv.StartRedisSentinel(t)
	r, err := parseRedisFlags(t, nil, map[string]string{
		"HOOKSTREAM_REDIS_SENTINEL_MASTER": s.Master,
		"HOOKSTREAM_REDIS_SENTINEL_ADDRS":  s.Sentinel,
	})
	if err != nil {
		t.Fatal(err)
	}
	rdb, err := r.client()
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := rdb.Set(ctx, "before", "1", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if v, err := s.Primary.Client.Get(ctx, "before").Result(); err != nil || v != "1" {
		t.Fatalf("the write did not reach the primary: %q, %v", v, err)
	}
	s.Failover(t)
	// The client learns of the switch from the Sentinel; a write racing it
	// may still reach the old primary before that becomes a replica.
	testenv.Eventually(t, 30*time.Second, "writes through the client reaching the promoted replica", func() bool {
		if rdb.Set(ctx, "after", "2", 0).Err() != nil {
			return false
		}
		v, err := s.Replica.Client.Get(ctx, "after").Result()
		return err == nil && v == "2"
	})
}

// redisACL is the least-privileged ACL README documents for Hookstream's
// Redis user.
var redisACL = []any{"~hookstream:*", "~dl:*", "~portal:*", "&hookstream:*",
	"+@read", "+@write", "+@scripting", "+@transaction", "+@pubsub", "+@connection", "-@dangerous"}

// TestRedisLeastPrivilegeACL runs the endpoint store (Lua scripts,
// MULTI/EXEC, pub/sub) through a client built from the flags as an ACL user
// holding only redisACL: endpoints are created and matched. A key outside
// the documented patterns is refused, so the ACL does restrict.
func TestRedisLeastPrivilegeACL(t *testing.T) {
	rd := testenv.StartRedis(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	args := append([]any{"ACL", "SETUSER", "hookstream", "on", ">" + testRedisSecret}, redisACL...)
	if err := rd.Client.Do(ctx, args...).Err(); err != nil {
		t.Fatal(err)
	}
	pw := filepath.Join(t.TempDir(), "password")
	if err := os.WriteFile(pw, []byte(testRedisSecret), 0o600); err != nil {
		t.Fatal(err)
	}
	r, err := parseRedisFlags(t, []string{"--redis-url", rd.URL, "--redis-username", "hookstream", "--redis-password-file", pw}, nil)
	if err != nil {
		t.Fatal(err)
	}
	rdb, err := r.client()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rdb.Close() }) // after the store's Run stopped
	if err := rdb.Set(ctx, "other:key", "1", 0).Err(); err == nil || !strings.Contains(err.Error(), "NOPERM") {
		t.Fatalf("a key outside the ACL: %v, want NOPERM", err)
	}
	// The delivery log's and the portal's keys (single-key commands).
	for _, key := range []string{"dl:v2:{acme}:evd:evt_1", "dl:v2:indexer:generation", "portal:{acme}:gen"} {
		if err := rdb.Incr(ctx, key).Err(); err != nil {
			t.Fatalf("INCR %s as the ACL user: %v", key, err)
		}
	}
	k := testenv.StartKafka(t)
	k.CreateTopics(t, topic.DefaultPrefix, topic.Partitions{Events: 1, Deliveries: 1, Other: 1})
	cat, err := schemas.Load()
	if err != nil {
		t.Fatal(err)
	}
	store := subscription.NewStore(k.Client(t), rdb, cat, subscription.WithAllowPrivate(true),
		subscription.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	testenv.Run(t, store)
	ep, err := store.Create(ctx, "acme", subscription.EndpointInput{URL: "http://127.0.0.1:9/hook", Events: []string{"agent.*"}})
	if err != nil {
		t.Fatal(err)
	}
	ids, err := store.Match(ctx, "acme", "agent.created")
	if err != nil || !slices.Equal(ids, []string{ep.ID}) {
		t.Fatalf("Match = %v, %v; want [%s]", ids, err, ep.ID)
	}
}

// TestRedisSecretsNeverLogged runs a role whose Redis refuses it (nothing
// listening; a wrong password from a file) at debug level: what it logs
// while it retries, and says when it stops, never holds the password.
func TestRedisSecretsNeverLogged(t *testing.T) {
	k := testenv.StartKafka(t)
	rd := testenv.StartRedis(t)
	if err := rd.Client.Do(context.Background(), "ACL", "SETUSER", "hookstream", "on", ">another-password", "+@all", "~*", "&*").Err(); err != nil {
		t.Fatal(err)
	}
	pw := filepath.Join(t.TempDir(), "password")
	if err := os.WriteFile(pw, []byte(testRedisSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name, failure string
		redisArgs     []string
	}{
		{"password in an unreachable URL", "connection refused", []string{"--redis-url", "redis://hookstream:" + testRedisSecret + "@" + freeAddr(t) + "/0"}},
		{"wrong password from a file", "WRONGPASS", []string{"--redis-url", "redis://hookstream@" + rd.Addr + "/0", "--redis-password-file", pw}},
	} {
		name, redisArgs := tt.name, tt.redisArgs
		t.Run(name, func(t *testing.T) {
			var out testenv.Output
			env := Env{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &out, LookupEnv: func(string) (string, bool) { return "", false }}
			ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
			defer cancel()
			args := append([]string{"fanout", "--kafka-brokers", k.Addr, "--http-addr", freeAddr(t), "--log-level", "debug", "--shutdown-grace", "1s", "--allow-unsafe-topics"}, redisArgs...)
			Main(ctx, args, env)
			if strings.Contains(out.String(), testRedisSecret) {
				t.Fatalf("the output holds the password:\n%s", out.String())
			}
			if !strings.Contains(out.String(), tt.failure) {
				t.Fatalf("the role logged no %q, so the test saw no failure:\n%s", tt.failure, out.String())
			}
		})
	}
}
