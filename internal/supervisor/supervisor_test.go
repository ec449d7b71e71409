package supervisor

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func TestFirstFailureStopsTheRest(t *testing.T) {
	boom := errors.New("boom")
	stopped := make(chan struct{})
	err := Run(context.Background(), quiet, time.Second,
		Named{"fails", Func(func(context.Context) error { return boom })},
		Named{"waits", Func(func(ctx context.Context) error { <-ctx.Done(); close(stopped); return nil })},
	)
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v, want boom", err)
	}
	select {
	case <-stopped:
	default:
		t.Fatal("the other worker was not stopped before Run returned")
	}
}

func TestCancelIsClean(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := Run(ctx, quiet, time.Second,
		Named{"a", Func(func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() })},
	)
	if err != nil {
		t.Fatalf("err = %v, want nil", err)
	}
}

func TestShutdownIsBounded(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	release := make(chan struct{})
	defer close(release)
	start := time.Now()
	err := Run(ctx, quiet, 50*time.Millisecond,
		Named{"stuck", Func(func(context.Context) error { <-release; return nil })},
	)
	if !errors.Is(err, ErrShutdownTimeout) {
		t.Fatalf("err = %v, want ErrShutdownTimeout", err)
	}
	if !strings.Contains(err.Error(), "stuck") {
		t.Errorf("err = %q, want it to name the stuck worker", err)
	}
	if time.Since(start) > 5*time.Second {
		t.Fatal("Run waited far past the grace period")
	}
}
