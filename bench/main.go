// Command bench is Hookstream's reproducible end-to-end benchmark (`make
// bench`): the embedded Kafka broker, a real redis-server and the api,
// fanout and deliverer roles each run as their own process, exactly as in
// production; receivers are real HTTP servers on 127.0.0.1 inside this
// process. It prints a table, and writes latest.json, latest.txt and
// latency.svg under -out. Nothing is asserted: targets are reported.
//
// Scenarios (run in this order; -scenarios picks some):
//
//	publish-lib   events/s through the producer library, allocs/event, peak memory
//	publish-http  events/s through POST /v1/events
//	fanout        the fanout role alone at fan-out 1, 10 and 100
//	fanout-scale  fanout's cost per event in a tenant of 100 vs 100,000 endpoints, 10 matching
//	a             throughput: fan-out 10, 1 KiB bodies, 1,000 endpoints
//	a-noindex     (a) without the delivery-log indexer: the indexer's cost to (a) in %
//	e             bare keep-alive POST loop, same bodies, receivers and concurrency
//	b             latency at 50% of (a)'s rate
//	c-blackhole   10% of endpoints never answer
//	c-500         10% of endpoints answer 500
//	c2            (b) beside one more tenant whose many endpoints never answer
//	d             (a) with 2 deliverer processes
//	f             (b) beside a 100,000-event replay to one endpoint
//	g             10,000 endpoints, every tenth black-holed, 100,000 deliveries backing off: deliverer memory
//	h             10,000 endpoints answering after 200 ms: defaults, -slow-inflight, and the bare loop
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"
)

// config is the benchmark's configuration; flags fill it.
type config struct {
	out            string
	duration       time.Duration // load time of each delivery scenario
	warmup         float64       // fraction of duration left out of the measurement
	publishEvents  int64         // events per publish scenario
	fanoutEvents   int64         // events per fanout-alone run
	endpoints      int
	fanout         int // endpoints per tenant = deliveries per event
	bodySize       int
	window         int // undelivered events kept in flight by the closed-loop publisher
	publishWorkers int
	inflight       int // the deliverer's in-flight budget, and the baseline's concurrency
	partitions     int
	requestTimeout time.Duration // deliverer request timeout in (c)
	verifyEvery    int64         // verify the signature of every n-th delivery
	listeners      int
	maxEvents      int
	scenarios      []string
	endpointsVia   string  // "store" or "api"
	latencyRate    float64 // events/s in (b); 0: half of (a)'s rate
	bin            string
	keep           bool
	quick          bool
	pprof          bool // profile the processes during each delivery scenario
	slowInflight   int  // (h): the deliverer's --max-in-flight besides its default, and the bare loop's concurrency
}

var allScenarios = []string{"publish-lib", "publish-http", "fanout", "fanout-scale", "a", "a-noindex", "e", "b", "c-blackhole", "c-500", "c2", "d", "f", "g", "h"}

func defaultConfig() config {
	return config{
		out:            "bench/results",
		duration:       30 * time.Second,
		warmup:         0.25,
		publishEvents:  100_000,
		fanoutEvents:   20_000,
		endpoints:      1000,
		fanout:         10,
		bodySize:       1024,
		window:         500,
		publishWorkers: 64,
		inflight:       256,
		partitions:     12,
		requestTimeout: 2 * time.Second,
		verifyEvery:    100,
		listeners:      8,
		maxEvents:      4_000_000,
		scenarios:      allScenarios,
		endpointsVia:   "store",
		slowInflight:   4096,
	}
}

func parseFlags(args []string, stderr io.Writer) (config, error) {
	c := defaultConfig()
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.out, "out", c.out, "directory for latest.json, latest.txt and latency.svg")
	fs.DurationVar(&c.duration, "duration", c.duration, "load time of each delivery scenario")
	fs.Int64Var(&c.publishEvents, "events", c.publishEvents, "events per publish-throughput scenario (also sizes the fanout runs: events/5)")
	fs.IntVar(&c.endpoints, "endpoints", c.endpoints, "endpoints (a multiple of -fanout)")
	fs.IntVar(&c.fanout, "fanout", c.fanout, "endpoints per tenant, so deliveries per event (at most 32)")
	fs.IntVar(&c.bodySize, "body", c.bodySize, "size of every POST body (the envelope) in bytes")
	fs.IntVar(&c.window, "window", c.window, "undelivered events the closed-loop publisher keeps in flight")
	fs.IntVar(&c.inflight, "inflight", c.inflight, "deliverer in-flight budget (--max-in-flight), and the baseline's concurrency")
	fs.IntVar(&c.slowInflight, "slow-inflight", c.slowInflight, "(h): the deliverer's --max-in-flight in its second run, and the bare loop's concurrency")
	fs.IntVar(&c.partitions, "partitions", c.partitions, "partitions of the events, deliveries and retries topics")
	fs.DurationVar(&c.requestTimeout, "request-timeout", c.requestTimeout, "deliverer request timeout in the black-hole scenario")
	scen := fs.String("scenarios", strings.Join(allScenarios, ","), "comma-separated scenarios to run: "+strings.Join(allScenarios, ","))
	fs.StringVar(&c.endpointsVia, "endpoints-via", c.endpointsVia, "create endpoints through subscription.Store in this process (store) or POST /v1/endpoints on an api process (api)")
	fs.Float64Var(&c.latencyRate, "latency-rate", 0, "events/s published in (b) (default: 50% of (a)'s deliveries/s divided by the fan-out)")
	fs.StringVar(&c.bin, "bin", "", "prebuilt hookstream binary (default: go build ./cmd/hookstream); -pprof and publish-http also build ./bench/pprofcmd")
	fs.BoolVar(&c.keep, "keep", false, "keep the processes' logs after a successful run")
	fs.BoolVar(&c.pprof, "pprof", false, "build the roles with net/http/pprof (./bench/pprofcmd) and save CPU profiles of every process during each delivery scenario under -out/pprof")
	fs.BoolVar(&c.quick, "quick", false, "smoke run: small counts and short durations (under a minute)")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if c.quick {
		// Explicit flags still win over -quick.
		if !set["duration"] {
			c.duration = 4 * time.Second
		}
		if !set["events"] {
			c.publishEvents = 5000
		}
		if !set["endpoints"] {
			c.endpoints = 100
		}
		if !set["window"] {
			c.window = 300
		}
		c.maxEvents = 500_000
	}
	c.fanoutEvents = max(c.publishEvents/5, 10_000)
	c.scenarios = nil
	for _, s := range strings.Split(*scen, ",") {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if !slices.Contains(allScenarios, s) {
			return c, fmt.Errorf("unknown scenario %q (want some of %s)", s, strings.Join(allScenarios, ","))
		}
		c.scenarios = append(c.scenarios, s)
	}
	switch {
	case c.fanout < 1 || c.fanout > 32:
		return c, fmt.Errorf("-fanout must be 1..32, not %d", c.fanout)
	case c.endpoints < c.fanout || c.endpoints%c.fanout != 0:
		return c, fmt.Errorf("-endpoints (%d) must be a positive multiple of -fanout (%d)", c.endpoints, c.fanout)
	case c.endpoints/c.fanout < 10:
		return c, fmt.Errorf("-endpoints/-fanout must give at least 10 tenants (10%% of endpoints are made unhealthy in (c))")
	case c.endpointsVia != "store" && c.endpointsVia != "api":
		return c, fmt.Errorf("-endpoints-via must be store or api, not %q", c.endpointsVia)
	case c.window < 1 || c.inflight < 1 || c.partitions < 1 || c.slowInflight < 1:
		return c, fmt.Errorf("-window, -inflight, -slow-inflight and -partitions must be positive")
	}
	return c, nil
}

func (c config) has(s string) bool { return slices.Contains(c.scenarios, s) }

func (c config) describe() map[string]any {
	return map[string]any{
		"duration_s":       c.duration.Seconds(),
		"warmup_fraction":  c.warmup,
		"publish_events":   c.publishEvents,
		"fanout_events":    c.fanoutEvents,
		"endpoints":        c.endpoints,
		"fanout":           c.fanout,
		"tenants":          c.endpoints / c.fanout,
		"body_bytes":       c.bodySize,
		"window_events":    c.window,
		"publish_workers":  c.publishWorkers,
		"inflight":         c.inflight,
		"partitions":       c.partitions,
		"request_timeout":  c.requestTimeout.String(),
		"verify_every":     c.verifyEvery,
		"receiver_servers": c.listeners,
		"scenarios":        c.scenarios,
		"quick":            c.quick,
		"endpoints_via":    c.endpointsVia,
		"pprof":            c.pprof,
		"slow_inflight":    c.slowInflight,
	}
}

func main() {
	cfg, err := parseFlags(os.Args[1:], os.Stderr)
	if err != nil {
		if err == flag.ErrHelp {
			return
		}
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := run(ctx, cfg, os.Stdout, os.Stderr)
	if rep != nil {
		rep.writeTable(os.Stdout)
		if paths, werr := rep.writeFiles(cfg.out); werr != nil {
			fmt.Fprintln(os.Stderr, "bench: writing results:", werr)
		} else {
			fmt.Fprintln(os.Stdout, "results:", strings.Join(paths, " "))
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}
