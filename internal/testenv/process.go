package testenv

import (
	"bytes"
	"os"
	"os/exec"
	"strconv"
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

// Lines returns the complete lines written so far, without their newlines;
// a line still being written is left for a later call.
func (o *Output) Lines() []string {
	s := o.String()
	s = s[:strings.LastIndexByte(s, '\n')+1]
	if s == "" {
		return nil
	}
	return strings.Split(strings.TrimSuffix(s, "\n"), "\n")
}

// Process is a command started by StartProcess or Start.
type Process struct {
	Cmd  *exec.Cmd
	Out  *Output       // stdout and stderr together, or what of them Cmd did not set
	done chan struct{} // closed when the process exited
	err  error         // its exit error, valid after done
}

// StartProcess runs bin with args as a separate OS process (so a test can
// SIGKILL it), collecting its output. It is killed when the test ends, and its
// output is logged if the test failed.
func StartProcess(t testing.TB, bin string, args ...string) *Process {
	t.Helper()
	return Start(t, exec.Command(bin, args...))
}

// Start is StartProcess for a command the caller prepared (its Dir, its Env,
// a Stdout of its own): whichever of Stdout and Stderr is unset goes to Out.
func Start(t testing.TB, cmd *exec.Cmd) *Process {
	t.Helper()
	p := &Process{Cmd: cmd, Out: &Output{}, done: make(chan struct{})}
	allowUnsafeTopics(cmd)
	if cmd.Stdout == nil {
		cmd.Stdout = p.Out
	}
	if cmd.Stderr == nil {
		cmd.Stderr = p.Out
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("testenv: start %s: %v", cmd.Path, err)
	}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("%s (pid %d) output:\n%s", strings.Join(cmd.Args, " "), cmd.Process.Pid, p.Out.String())
		}
	})
	return p
}

// WaitFor polls cond until it holds, failing the test after timeout or if
// the process exits first (cond is asked once more then: the exit may be
// what completed the output).
func (p *Process) WaitFor(t testing.TB, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		select {
		case <-p.done:
			if cond() {
				return
			}
			t.Fatalf("testenv: process exited (%v) before %s", p.err, what)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("testenv: timed out after %s waiting for %s", timeout, what)
		}
	}
}

// WaitOutput waits until the output contains s, failing the test after
// timeout or if the process exits first.
func (p *Process) WaitOutput(t testing.TB, s string, timeout time.Duration) {
	t.Helper()
	p.WaitFor(t, "output "+strconv.Quote(s), timeout, func() bool { return strings.Contains(p.Out.String(), s) })
}

// Kill SIGKILLs the process, as a crash would, and waits for it to go.
func (p *Process) Kill() {
	_ = p.Cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// Stop sends sig (SIGTERM as an orchestrator would, SIGINT as Ctrl-C does)
// and waits up to timeout for the exit. exited is false when it did not exit
// in time; err is the exit error (nil for a clean exit).
func (p *Process) Stop(sig os.Signal, timeout time.Duration) (exited bool, err error) {
	_ = p.Cmd.Process.Signal(sig)
	select {
	case <-p.done:
		return true, p.err
	case <-time.After(timeout):
		return false, nil
	}
}
