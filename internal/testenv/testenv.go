// Package testenv starts the real parts integration tests run against: an
// embedded Kafka broker (kfake) reached over TCP by the real franz-go client,
// a real redis-server on a free port, and the hookstream binary. Everything
// is cleaned up when the test ends.
package testenv

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hookstream/hookstream/internal/kafkaserver"
	"github.com/hookstream/hookstream/topic"
)

// Kafka is a running embedded broker.
type Kafka struct {
	Addr   string
	Server *kafkaserver.Server
	opts   []kgo.Opt // of every client; a SecureKafka's credentials
}

// StartKafka starts an embedded broker for t and closes it when t ends.
func StartKafka(t testing.TB, opts ...kafkaserver.Option) *Kafka {
	t.Helper()
	s, err := kafkaserver.Start(opts...)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	t.Cleanup(s.Close)
	return &Kafka{Addr: s.Addr(), Server: s}
}

// StartKafkaProcess runs `bin kafka` (the embedded broker as its own
// process, as several processes on one machine share it) on a free port,
// waits until it answers, and kills it when t ends. Server is nil.
func StartKafkaProcess(t testing.TB, bin string) *Kafka {
	t.Helper()
	addr := fmt.Sprintf("127.0.0.1:%d", FreePort(t))
	p := StartProcess(t, bin, "kafka", "--addr", addr)
	k := &Kafka{Addr: addr}
	cl := k.Client(t)
	p.WaitFor(t, "the broker at "+addr, 30*time.Second, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		return cl.Ping(ctx) == nil
	})
	return k
}

// Client returns a franz-go client seeded with the broker, closed when t ends.
func (k *Kafka) Client(t testing.TB, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append(k.baseOpts(), opts...)...)
	if err != nil {
		t.Fatalf("testenv: kafka client: %v", err)
	}
	t.Cleanup(cl.Close)
	return cl
}

func (k *Kafka) baseOpts() []kgo.Opt {
	if k.opts != nil {
		return slices.Clone(k.opts)
	}
	return []kgo.Opt{kgo.SeedBrokers(k.Addr)}
}

// CreateTopics creates Hookstream's topics under prefix with the given
// partition counts.
func (k *Kafka) CreateTopics(t testing.TB, prefix string, p topic.Partitions) topic.Names {
	t.Helper()
	cl := k.Client(t)
	names := topic.New(prefix)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := topic.Ensure(ctx, kadm.NewClient(cl), names, p); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	return names
}

// ReadAll consumes every committed record of topic from the start up to its
// current end offsets, with read_committed isolation. A transaction still
// open below those offsets is waited for (until its producer ends it or its
// timeout aborts it), so the answer does not depend on how fast the broker
// serves the reads. A topic that does not exist has no records.
func (k *Kafka) ReadAll(t testing.TB, topicName string) []*kgo.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// Closed on return rather than at the end of the test: tests call
	// ReadAll in polling loops.
	newClient := func(opts ...kgo.Opt) *kgo.Client {
		cl, err := kgo.NewClient(append(k.baseOpts(), opts...)...)
		if err != nil {
			t.Fatalf("testenv: kafka client: %v", err)
		}
		return cl
	}
	admCl := newClient()
	defer admCl.Close()
	adm := kadm.NewClient(admCl)
	var ends kadm.ListedOffsets
	for {
		var err error
		ends, err = adm.ListEndOffsets(ctx, topicName)
		if err == nil {
			err = ends.Error()
		}
		if err == nil || errors.Is(err, kerr.UnknownTopicOrPartition) {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("testenv: end offsets of %s: %v", topicName, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	end, unread := map[int32]int64{}, map[int32]bool{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Err == nil && o.Offset > 0 {
			end[o.Partition], unread[o.Partition] = o.Offset, true
		}
	})
	// Transaction markers occupy offsets without being records: keeping
	// them lets every partition reach its end offset exactly.
	cl := newClient(
		kgo.ConsumeTopics(topicName),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.KeepControlRecords(),
	)
	defer cl.Close()
	var out []*kgo.Record
	for len(unread) > 0 {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("testenv: reading %s: timed out before reaching the end offsets %v (partitions %v unread; a transaction open?)", topicName, end, unread)
		}
		fs.EachError(func(_ string, _ int32, err error) {
			t.Fatalf("testenv: fetch %s: %v", topicName, err)
		})
		fs.EachRecord(func(r *kgo.Record) {
			if r.Offset >= end[r.Partition] {
				// Written after the end offsets were listed: the
				// records below were read or, aborted, skipped.
				delete(unread, r.Partition)
				return
			}
			if !r.Attrs.IsControl() {
				out = append(out, r)
			}
			if r.Offset+1 >= end[r.Partition] {
				delete(unread, r.Partition)
			}
		})
	}
	return out
}

// Redis is a running redis-server.
type Redis struct {
	Addr   string
	URL    string
	Client *redis.Client
	cmd    *exec.Cmd
}

// StartRedis starts a real redis-server on a free port, without persistence,
// and stops it when t ends. It fails the test when redis-server is not
// installed (`make test` installs it).
func StartRedis(t testing.TB) *Redis {
	t.Helper()
	return startRedis(t, FreePort(t), nil, &redis.Options{})
}

// startRedis runs redis-server on 127.0.0.1:port with extra arguments (the
// first may be a configuration file) and waits until a client built from o
// (its Addr set here) answers PING.
func startRedis(t testing.TB, port int, extra []string, o *redis.Options) *Redis {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatalf("testenv: redis-server not found on PATH (run `make test`, which installs it): %v", err)
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	var logs Output
	var args []string
	if len(extra) > 0 && !strings.HasPrefix(extra[0], "-") {
		args, extra = append(args, extra[0]), extra[1:]
	}
	args = append(append(args, "--port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--daemonize", "no", "--loglevel", "warning"), extra...)
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("testenv: start redis-server: %v", err)
	}
	r := &Redis{Addr: addr, URL: "redis://" + addr + "/0", cmd: cmd}
	t.Cleanup(r.Stop)
	o.Addr = addr
	r.Client = redis.NewClient(o)
	t.Cleanup(func() { _ = r.Client.Close() })
	deadline := time.Now().Add(10 * time.Second)
	for r.Client.Ping(context.Background()).Err() != nil {
		if time.Now().After(deadline) {
			t.Fatalf("testenv: redis-server on %s did not answer: %s", addr, logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return r
}

// Stop kills the server (as a crash would); later commands fail until a new
// one is started.
func (r *Redis) Stop() {
	if r.cmd.Process != nil && r.cmd.ProcessState == nil {
		_ = r.cmd.Process.Kill()
		_ = r.cmd.Wait()
	}
}

// Restart kills the server and starts a new, empty one on the same port:
// a Redis without persistence crashing and coming back. Clients
// reconnect. Only for a Redis from StartRedis.
func (r *Redis) Restart(t testing.TB) {
	t.Helper()
	r.Stop()
	_, port, _ := net.SplitHostPort(r.Addr)
	p, err := strconv.Atoi(port)
	if err != nil {
		t.Fatalf("testenv: redis address %s: %v", r.Addr, err)
	}
	r.cmd = startRedis(t, p, nil, &redis.Options{}).cmd
}

// FlushAll empties Redis, as an operator's FLUSHALL or a fresh Redis would.
func (r *Redis) FlushAll(t testing.TB) {
	t.Helper()
	if err := r.Client.FlushAll(context.Background()).Err(); err != nil {
		t.Fatalf("testenv: flushall: %v", err)
	}
}

// FreePort returns a TCP port that was free a moment ago on 127.0.0.1.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("testenv: free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

var (
	buildOnce sync.Once
	buildPath string
	buildErr  error
)

// Binary builds cmd/hookstream once per test process and returns its path,
// for tests that run roles as separate OS processes (to SIGKILL them).
func Binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		_, file, _, _ := runtime.Caller(0)
		root := filepath.Join(filepath.Dir(file), "..", "..")
		dir, err := os.MkdirTemp("", "hookstream-bin-")
		if err != nil {
			buildErr = err
			return
		}
		buildPath = filepath.Join(dir, "hookstream")
		cmd := exec.Command("go", "build", "-o", buildPath, "./cmd/hookstream")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build ./cmd/hookstream: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatalf("testenv: %v", buildErr)
	}
	return buildPath
}
