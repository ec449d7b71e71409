package testenv

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hookstream/hookstream/internal/supervisor"
)

// stopTimeout bounds how long a stopped worker may take to return.
const stopTimeout = time.Minute

// Run runs w in the background until stop is called or the test ends.
// stop cancels Run's context and returns Run's error; when the test did not
// call stop, the error fails the test at its end. A Run that has not
// returned a minute after the cancel is an error too.
func Run(t testing.TB, w supervisor.Worker) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	var once sync.Once
	var err error
	stopOnce := func() error {
		once.Do(func() {
			cancel()
			select {
			case err = <-done:
			case <-time.After(stopTimeout):
				err = errors.New("still running a minute after its context was cancelled")
			}
		})
		return err
	}
	var taken atomic.Bool // the test called stop and has the error
	t.Cleanup(func() {
		if err := stopOnce(); err != nil && !taken.Load() {
			t.Errorf("testenv: %T Run: %v", w, err)
		}
	})
	return func() error {
		taken.Store(true)
		return stopOnce()
	}
}

// Eventually polls cond every 20 ms until it holds, and fails the test when
// it still does not after timeout: for effects that happen in the
// background.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
