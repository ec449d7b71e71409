package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hookstream/hookstream/deliverer"
	"github.com/hookstream/hookstream/fanout"
	"github.com/hookstream/hookstream/topic"
)

// adminToken is the API token the benchmark uses; it may act for every tenant.
const adminToken = "bench-admin-token"

// clusterConfig says which processes one scenario runs.
type clusterConfig struct {
	partitions int // of the events, deliveries and retries topics
	api        bool
	fanout     bool
	deliverers int
	// delivererArgs are extra flags for every deliverer process.
	delivererArgs []string
	// indexer runs the delivery-log indexer beside the deliverers, as
	// production does: it reads every attempt record.
	indexer bool
	// pprof runs every hookstream process from the instrumented binary
	// (./bench/pprofcmd), serving net/http/pprof and expvar.
	pprof bool
	// instrumentAPI runs only the api process from it.
	instrumentAPI bool
}

// cluster is one scenario's set of processes, started fresh so that each
// process's peak RSS belongs to that scenario alone.
type cluster struct {
	dir        string
	bin        string // cmd/hookstream
	ibin       string // bench/pprofcmd, when instrumenting
	cfg        clusterConfig
	kafka      *proc
	redis      *proc
	api        *proc
	fanout     *proc
	deliverers []*proc
	indexer    *proc

	brokers  string
	redisURL string
	apiURL   string
}

// startCluster starts what cfg asks for; bins holds cmd/hookstream and, when
// cfg instruments anything, bench/pprofcmd.
func startCluster(ctx context.Context, bins binaries, dir string, cfg clusterConfig) (c *cluster, err error) {
	c = &cluster{dir: dir, bin: bins.plain, ibin: bins.instrumented, cfg: cfg}
	if (cfg.pprof || cfg.instrumentAPI) && c.ibin == "" {
		return nil, errors.New("instrumented binary not built")
	}
	defer func() {
		if err != nil {
			c.stop()
		}
	}()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}

	if c.brokers, err = freeAddr(); err != nil {
		return nil, err
	}
	bin, env, pprofURL, err := c.binFor("kafka")
	if err != nil {
		return nil, err
	}
	c.kafka, err = startProc(dir, "kafka", bin, []string{"kafka", "--addr", c.brokers, "--partitions", strconv.Itoa(cfg.partitions)}, env)
	if err != nil {
		return nil, err
	}
	c.kafka.pprofURL = pprofURL
	if err := c.kafka.waitTCP(ctx, c.brokers, 30*time.Second); err != nil {
		return nil, err
	}
	if err := createTopics(ctx, c.brokers, int32(cfg.partitions)); err != nil {
		return nil, err
	}

	redisAddr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	redisBin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, fmt.Errorf("redis-server not on PATH (make bench installs it): %w", err)
	}
	_, port, _ := strings.Cut(redisAddr, ":")
	c.redis, err = startProc(dir, "redis", redisBin, []string{"--port", port, "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--daemonize", "no", "--loglevel", "warning"}, nil)
	if err != nil {
		return nil, err
	}
	if err := c.redis.waitTCP(ctx, redisAddr, 10*time.Second); err != nil {
		return nil, err
	}
	c.redisURL = "redis://" + redisAddr + "/0"

	if cfg.api {
		if c.api, err = c.startRole(ctx, "api", "api", []string{"--allow-private-destinations"}); err != nil {
			return nil, err
		}
		c.apiURL = "http://" + c.api.httpAddr
	}
	if cfg.fanout {
		if c.fanout, err = c.startRole(ctx, "fanout", "fanout", nil); err != nil {
			return nil, err
		}
	}
	for i := range cfg.deliverers {
		args := append([]string{"--allow-private-destinations"}, cfg.delivererArgs...)
		d, err := c.startRole(ctx, "deliverer-"+strconv.Itoa(i+1), "deliverer", args)
		if err != nil {
			return nil, err
		}
		c.deliverers = append(c.deliverers, d)
	}
	if cfg.indexer {
		if c.indexer, err = c.startRole(ctx, "indexer", "indexer", nil); err != nil {
			return nil, err
		}
	}
	// Ready is not yet consuming: wait for every consumer group to settle,
	// so no rebalance happens during the measurement.
	groups := map[string]int{}
	if cfg.fanout {
		groups[fanout.Group] = 1
	}
	if cfg.deliverers > 0 {
		groups[deliverer.Group] = cfg.deliverers
	}
	if err := c.waitGroups(ctx, groups, 60*time.Second); err != nil {
		return nil, err
	}
	return c, nil
}

// waitGroups waits until each group is Stable with the given member count.
func (c *cluster) waitGroups(ctx context.Context, want map[string]int, timeout time.Duration) error {
	if len(want) == 0 {
		return nil
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.brokers))
	if err != nil {
		return fmt.Errorf("kafka client: %w", err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	deadline := time.Now().Add(timeout)
	for {
		if err := c.alive(); err != nil {
			return err
		}
		var names []string
		for g := range want {
			names = append(names, g)
		}
		described, err := adm.DescribeGroups(ctx, names...)
		settled := err == nil
		var state []string
		for g, n := range want {
			d, ok := described[g]
			settled = settled && ok && d.Err == nil && d.State == "Stable" && len(d.Members) == n
			state = append(state, fmt.Sprintf("%s: %s with %d members (want %d)", g, d.State, len(d.Members), n))
		}
		if settled {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("consumer groups did not settle in %v: %s", timeout, strings.Join(state, "; "))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// startRole starts `hookstream <role>` and waits for its /readyz.
func (c *cluster) startRole(ctx context.Context, name, role string, extra []string) (*proc, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	args := []string{role,
		"--kafka-brokers", c.brokers,
		"--redis-url", c.redisURL,
		"--http-addr", addr,
		"--log-level", "warn",
		"--log-format", "text",
	}
	args = append(args, extra...)
	bin, env, pprofURL, err := c.binFor(role)
	if err != nil {
		return nil, err
	}
	// Tokens go through the environment, as in production, so they never
	// show in ps.
	env = append(env, "HOOKSTREAM_API_TOKENS="+adminToken+"=*")
	p, err := startProc(c.dir, name, bin, args, env)
	if err != nil {
		return nil, err
	}
	p.httpAddr, p.pprofURL = addr, pprofURL
	if err := p.waitHTTP(ctx, "http://"+addr+"/readyz", 60*time.Second); err != nil {
		p.stop(5 * time.Second)
		return nil, err
	}
	return p, nil
}

// binFor picks the binary of a role: the instrumented one, with a pprof
// address, when profiling it.
func (c *cluster) binFor(role string) (bin string, env []string, pprofURL string, err error) {
	if !c.cfg.pprof && !(c.cfg.instrumentAPI && role == "api") {
		return c.bin, nil, "", nil
	}
	addr, err := freeAddr()
	if err != nil {
		return "", nil, "", err
	}
	return c.ibin, []string{"HOOKSTREAM_BENCH_PPROF_ADDR=" + addr}, "http://" + addr + "/debug/pprof", nil
}

// createTopics creates Hookstream's topics before any role starts, so every
// scenario has the partition counts it asked for.
func createTopics(ctx context.Context, brokers string, partitions int32) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers))
	if err != nil {
		return fmt.Errorf("kafka client: %w", err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	p := topic.Partitions{Events: partitions, Deliveries: partitions, Other: partitions}
	if err := topic.Ensure(ctx, kadm.NewClient(cl), topic.New(topic.DefaultPrefix), p); err != nil {
		return fmt.Errorf("create topics: %w", err)
	}
	return nil
}

func (c *cluster) procs() []*proc {
	var ps []*proc
	for _, p := range []*proc{c.kafka, c.redis, c.api, c.fanout} {
		if p != nil {
			ps = append(ps, p)
		}
	}
	ps = append(ps, c.deliverers...)
	if c.indexer != nil {
		ps = append(ps, c.indexer)
	}
	return ps
}

// alive reports the first process that exited on its own.
func (c *cluster) alive() error {
	var errs []error
	for _, p := range c.procs() {
		if p.exited() {
			errs = append(errs, p.failure())
		}
	}
	return errors.Join(errs...)
}

// peakRSS is every process's peak RSS in MiB, the benchmark's own included.
func (c *cluster) peakRSS() map[string]float64 {
	m := map[string]float64{"bench": vmHWM("/proc/self/status")}
	for _, p := range c.procs() {
		m[p.name] = p.peakRSS()
	}
	return m
}

// cpu is the CPU seconds each process, the benchmark's own included, has
// used so far.
// The whole machine's busy time rides along under systemKey, so that
// coresUsed can tell what everything else on the machine used.
func (c *cluster) cpu() map[string]float64 {
	m := map[string]float64{"bench": cpuSeconds("/proc/self/stat"), systemKey: systemBusySeconds()}
	for _, p := range c.procs() {
		m[p.name] = p.cpuSeconds()
	}
	return m
}

const (
	systemKey = "(system)"
	// otherKey is CPU used by processes outside the benchmark: anything
	// above noise means the numbers are skewed by other work.
	otherKey = "other"
)

// coresUsed is the CPU each process used between two cpu() samples, in
// cores (1 = one core busy all the time), and under "other" what the rest
// of the machine used.
func coresUsed(before, after map[string]float64, wall time.Duration) map[string]float64 {
	m := map[string]float64{}
	ours := 0.0
	for name, a := range after {
		if name == systemKey {
			continue
		}
		m[name] = (a - before[name]) / wall.Seconds()
		ours += m[name]
	}
	if sys, ok := after[systemKey]; ok {
		m[otherKey] = max(0, (sys-before[systemKey])/wall.Seconds()-ours)
	}
	for name, v := range m {
		m[name] = math.Round(v*100) / 100
	}
	return m
}

// saveMetrics writes every role's /metrics to <dir>/<name>.metrics, for a
// look after the run (-keep).
func (c *cluster) saveMetrics(ctx context.Context) {
	client := &http.Client{Timeout: 5 * time.Second}
	for _, p := range c.procs() {
		if p.httpAddr == "" {
			continue
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+p.httpAddr+"/metrics", nil)
		if err != nil {
			continue
		}
		resp, err := client.Do(req)
		if err != nil {
			continue
		}
		b, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		_ = os.WriteFile(filepath.Join(c.dir, p.name+".metrics"), b, 0o644)
	}
}

// stop stops the roles first (they drain into Kafka and Redis), then the
// broker and Redis.
func (c *cluster) stop() {
	for _, d := range c.deliverers {
		d.stop(30 * time.Second)
	}
	for _, p := range []*proc{c.indexer, c.fanout, c.api, c.redis, c.kafka} {
		if p != nil {
			p.stop(30 * time.Second)
		}
	}
}

// rssString formats a peak-RSS map in a fixed process order.
func rssString(m map[string]float64) string { return procString(m, "%.0f") }

// procString formats a value per process in a fixed process order.
func procString(m map[string]float64, verb string) string {
	order := map[string]int{"kafka": 0, "redis": 1, "api": 2, "fanout": 3, "bench": 9, otherKey: 10}
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Slice(names, func(i, j int) bool {
		oi, ok := order[names[i]]
		if !ok {
			oi = 5
		}
		oj, ok := order[names[j]]
		if !ok {
			oj = 5
		}
		if oi != oj {
			return oi < oj
		}
		return names[i] < names[j]
	})
	var b strings.Builder
	for i, n := range names {
		if i > 0 {
			b.WriteString(" ")
		}
		fmt.Fprintf(&b, "%s="+verb, n, m[n])
	}
	return b.String()
}
