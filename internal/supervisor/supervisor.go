// Package supervisor runs a process's long-running workers together: each is
// a Run(ctx) error; the first to fail cancels the others, and shutdown waits
// for all of them, bounded by a grace period.
package supervisor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"
)

// Worker is one long-running part of a process. Run blocks until ctx is
// cancelled (returning nil or ctx's error) or the worker fails.
type Worker interface {
	Run(ctx context.Context) error
}

// Func adapts a function to a Worker.
type Func func(ctx context.Context) error

// Run calls f(ctx).
func (f Func) Run(ctx context.Context) error { return f(ctx) }

// Named pairs a worker with the name used in logs and errors.
type Named struct {
	Name   string
	Worker Worker
}

// ErrShutdownTimeout is returned when workers did not stop within the grace
// period after cancellation.
var ErrShutdownTimeout = errors.New("supervisor: workers did not stop in time")

// Run starts every worker and blocks until ctx is done or one worker returns.
// Then it cancels the rest and waits for them at most grace. It returns the
// first worker error (nil when the stop came from ctx and all stopped cleanly).
func Run(ctx context.Context, log *slog.Logger, grace time.Duration, workers ...Named) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type result struct {
		name string
		err  error
	}
	done := make(chan result, len(workers))
	running := map[string]int{} // names of the workers not returned yet
	for _, w := range workers {
		running[w.Name]++
	}
	for _, w := range workers {
		go func() {
			err := w.Worker.Run(ctx)
			done <- result{w.Name, err}
		}()
	}
	var first error
	remaining := len(workers)
	if remaining > 0 {
		select {
		case <-ctx.Done():
		case r := <-done:
			remaining--
			running[r.name]--
			if r.err != nil && !errors.Is(r.err, context.Canceled) {
				first = fmt.Errorf("%s: %w", r.name, r.err)
				log.Error("worker failed", "worker", r.name, "err", r.err)
			} else {
				log.Info("worker stopped", "worker", r.name)
			}
		}
	}
	cancel()
	timer := time.NewTimer(grace)
	defer timer.Stop()
	for ; remaining > 0; remaining-- {
		select {
		case r := <-done:
			running[r.name]--
			if r.err != nil && !errors.Is(r.err, context.Canceled) {
				log.Error("worker stopped with error", "worker", r.name, "err", r.err)
				if first == nil {
					first = fmt.Errorf("%s: %w", r.name, r.err)
				}
			}
		case <-timer.C:
			var names []string
			for name, n := range running {
				if n > 0 {
					names = append(names, name)
				}
			}
			slices.Sort(names)
			return errors.Join(first, fmt.Errorf("%w (%d still running after %s: %s)",
				ErrShutdownTimeout, remaining, grace, strings.Join(names, ", ")))
		}
	}
	return first
}
