package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"
)

// bench holds what every scenario shares.
type bench struct {
	cfg     config
	log     io.Writer
	dir     string // scratch: the binaries and each scenario's process logs
	bins    binaries
	rs      *receivers
	payload payload
	rep     *report
}

func (b *bench) logf(format string, args ...any) {
	fmt.Fprintf(b.log, "%s bench: %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

// run runs the configured scenarios in order and returns what they
// measured. A scenario that fails is reported in Problems and the others
// still run; the error is the first failure.
func run(ctx context.Context, cfg config, stdout, stderr io.Writer) (*report, error) {
	b := &bench{cfg: cfg, log: stderr, rep: &report{Date: now(), Machine: describeMachine(), Config: cfg.describe()}}
	b.rep.LoadAvg[0] = loadAvg()
	defer func() { b.rep.LoadAvg[1] = loadAvg() }()
	var err error
	if b.payload, err = newPayload(cfg.bodySize); err != nil {
		return nil, err
	}
	if b.dir, err = os.MkdirTemp("", "hookstream-bench-"); err != nil {
		return nil, err
	}
	if b.rs, err = startReceivers(cfg.listeners); err != nil {
		return nil, err
	}
	defer b.rs.close()

	needPlain, needInstrumented := false, cfg.pprof
	for _, s := range cfg.scenarios {
		needPlain = needPlain || s != "e"
		needInstrumented = needInstrumented || s == "publish-http"
	}
	if needPlain {
		b.bins.plain = cfg.bin
		if b.bins.plain == "" {
			b.logf("building ./cmd/hookstream")
			if b.bins.plain, err = buildBinary(ctx, b.dir, "./cmd/hookstream"); err != nil {
				return b.rep, err
			}
		}
	}
	if needInstrumented {
		b.logf("building ./bench/pprofcmd (cmd/hookstream with pprof and expvar)")
		if b.bins.instrumented, err = buildBinary(ctx, b.dir, "./bench/pprofcmd"); err != nil {
			return b.rep, err
		}
	}

	var first error
	for _, s := range allScenarios {
		if !cfg.has(s) {
			continue
		}
		if ctx.Err() != nil {
			break
		}
		if err := b.scenario(ctx, s); err != nil {
			b.logf("%s failed: %v", s, err)
			b.rep.Problems = append(b.rep.Problems, fmt.Sprintf("%s: %v", s, err))
			first = cmpOr(first, fmt.Errorf("%s: %w", s, err))
		}
	}
	b.rep.judge()
	if first == nil && ctx.Err() != nil {
		first = ctx.Err()
	}
	if first == nil && !cfg.keep {
		_ = os.RemoveAll(b.dir)
	} else {
		fmt.Fprintf(stderr, "bench: process logs kept in %s\n", b.dir)
	}
	return b.rep, first
}

func cmpOr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

func (b *bench) scenario(ctx context.Context, id string) error {
	resetPeakRSS()
	switch id {
	case "publish-lib":
		return b.publishLibrary(ctx)
	case "publish-http":
		return b.publishHTTP(ctx)
	case "fanout":
		return b.fanoutAlone(ctx)
	case "fanout-scale":
		return b.fanoutScale(ctx)
	case "a":
		return b.throughput(ctx)
	case "a-noindex":
		return b.throughputNoIndex(ctx)
	case "e":
		return b.baseline(ctx)
	case "b":
		return b.latency(ctx)
	case "c-blackhole":
		return b.isolation(ctx, blackhole)
	case "c-500":
		return b.isolation(ctx, failing)
	case "c2":
		return b.fairness(ctx)
	case "d":
		return b.scale(ctx)
	case "f":
		return b.replayBeside(ctx) // replay.go
	case "g":
		return b.memoryBound(ctx)
	case "h":
		return b.slowReceivers(ctx)
	}
	return fmt.Errorf("unknown scenario %q", id)
}

// scenarioDir is where one scenario's processes write their logs.
func (b *bench) scenarioDir(id string) string { return filepath.Join(b.dir, id) }

// resetPeakRSS restarts this process's VmHWM from its current RSS, so each
// scenario reports its own peak (Linux: writing 5 to clear_refs).
func resetPeakRSS() {
	_ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
}

// baseline is scenario (e): the bare keep-alive POST loop.
func (b *bench) baseline(ctx context.Context) error {
	count := int64(b.cfg.endpoints) * 200
	if a := b.rep.scenario("a"); a != nil && a.Received > 0 {
		count = a.Received
	}
	s, err := b.bareLoop(ctx, "e", "(e) bare POST loop", b.cfg.inflight, b.cfg.endpoints, 0, count)
	if err != nil {
		return err
	}
	if a := b.rep.scenario("a"); a != nil && s.Rate > 0 {
		a.Ratio, a.RatioOf = a.Rate/s.Rate, "(e)"
	}
	b.rep.Scenarios = append(b.rep.Scenarios, s)
	return nil
}

var errSkipped = errors.New("skipped")
