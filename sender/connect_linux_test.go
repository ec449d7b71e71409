package sender

import (
	"context"
	"errors"
	"net"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// TestConnectTimeout dials a listener whose accept queue is full, so the
// kernel drops further SYNs and connecting hangs until the connect timeout.
func TestConnectTimeout(t *testing.T) {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Skip("socket:", err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Skip("bind:", err)
	}
	if err := syscall.Listen(fd, 0); err != nil { // never accepted from
		t.Skip("listen:", err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(sa.(*syscall.SockaddrInet4).Port))
	filler, err := net.DialTimeout("tcp", addr, time.Second) // fills the queue
	if err != nil {
		t.Skip("filling the accept queue:", err)
	}
	t.Cleanup(func() { filler.Close() })
	if c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond); err == nil {
		c.Close()
		t.Skip("this kernel accepts connections beyond the backlog")
	}

	const connect = 200 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s := New(WithAllowPrivate(true), WithConnectTimeout(connect), WithTimeout(20*time.Second))
	res := s.Send(ctx, Request{URL: "http://" + addr + "/", Body: body, EventID: eventID, Secrets: []string{newSecret(t)}})
	if res.Outcome != Failed || res.Status != 0 || !errors.Is(res.Err, ErrTimeout) {
		t.Fatalf("%+v, want Failed with ErrTimeout", res)
	}
	var ne net.Error
	if !errors.As(res.Err, &ne) || !ne.Timeout() {
		t.Fatalf("err %v, want the dialer's timeout (the 20s total timeout must not be what ended it)", res.Err)
	}
	if ctx.Err() != nil || res.Latency < connect {
		t.Fatalf("latency %v, want at least the connect timeout %v and ended by it", res.Latency, connect)
	}
}
