package testenv

import (
	"bytes"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Output is an io.Writer that several goroutines (a process, a server's
// handlers) may write to while a test reads it.
type Output struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (o *Output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.b.Write(p)
}

// String returns everything written so far.
func (o *Output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.b.String()
}

// Process is a command started by StartProcess.
type Process struct {
	Cmd  *exec.Cmd
	Out  *Output       // stdout and stderr together
	done chan struct{} // closed when the process exited
	err  error         // its exit error, valid after done
}

// StartProcess runs bin with args as a separate OS process (so a test can
// SIGKILL it), collecting its output. It is killed when the test ends, and its
// output is logged if the test failed.
func StartProcess(t testing.TB, bin string, args ...string) *Process {
	t.Helper()
	p := &Process{Cmd: exec.Command(bin, args...), Out: &Output{}, done: make(chan struct{})}
	p.Cmd.Stdout, p.Cmd.Stderr = p.Out, p.Out
	if err := p.Cmd.Start(); err != nil {
		t.Fatalf("testenv: start %s: %v", bin, err)
	}
	go func() { p.err = p.Cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		_ = p.Cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("%s %s (pid %d) output:\n%s", bin, strings.Join(args, " "), p.Cmd.Process.Pid, p.Out.String())
		}
	})
	return p
}

// WaitOutput waits until the output contains s, failing the test after
// timeout or if the process exits first.
func (p *Process) WaitOutput(t testing.TB, s string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !strings.Contains(p.Out.String(), s) {
		select {
		case <-p.done:
			t.Fatalf("testenv: process exited (%v) before printing %q", p.err, s)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("testenv: no %q in output after %s", s, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Kill SIGKILLs the process, as a crash would, and waits for it to go.
func (p *Process) Kill() {
	_ = p.Cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// Stop sends SIGTERM and waits up to timeout for the exit. exited is false
// when it did not exit in time; err is the exit error (nil for a clean exit).
func (p *Process) Stop(timeout time.Duration) (exited bool, err error) {
	_ = p.Cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return true, p.err
	case <-time.After(timeout):
		return false, nil
	}
}
