package ops_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hookstream/hookstream/internal/ops"
)

// readBody is a route that reads the whole request body, as the API does.
var readBody = ops.WithHandler("POST /body", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	if _, err := io.ReadAll(r.Body); err != nil {
		w.WriteHeader(http.StatusBadRequest)
	}
}))

func dial(t *testing.T, base string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// closedWithin reports whether the server closes c within d: every byte
// the server still sends is read and dropped.
func closedWithin(c net.Conn, d time.Duration) bool {
	_ = c.SetReadDeadline(time.Now().Add(d))
	_, err := io.Copy(io.Discard, c)
	var ne net.Error
	return !(errors.As(err, &ne) && ne.Timeout())
}

// TestLimits checks that neither an idle keep-alive connection nor a
// request trickling its body keeps its connection, and that connections
// beyond MaxConns wait until one closes.
func TestLimits(t *testing.T) {
	const timeout = 300 * time.Millisecond
	base := serve(t, ops.New("127.0.0.1:0", readBody,
		ops.WithLimits(ops.Limits{ReadTimeout: timeout, WriteTimeout: 2 * timeout, IdleTimeout: timeout, MaxConns: 2})))

	t.Run("idle keep-alive", func(t *testing.T) {
		c := dial(t, base)
		if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("GET /healthz: %v %v", resp, err)
		}
		if !closedWithin(c, 20*timeout) {
			t.Fatalf("idle keep-alive connection still open after %s (idle timeout %s)", 20*timeout, timeout)
		}
	})

	t.Run("trickled body", func(t *testing.T) {
		c := dial(t, base)
		if _, err := io.WriteString(c, "POST /body HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		closed := make(chan bool, 1)
		go func() { closed <- closedWithin(c, 20*timeout) }()
		// One byte per 50ms would take 50s to finish the body.
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case ok := <-closed:
				if !ok {
					t.Fatalf("connection trickling its body still open after %s (read timeout %s)", 20*timeout, timeout)
				}
				return
			case <-tick.C:
				_, _ = c.Write([]byte("x"))
			}
		}
	})

	t.Run("connection limit", func(t *testing.T) {
		long := serve(t, ops.New("127.0.0.1:0", ops.WithLimits(ops.Limits{IdleTimeout: time.Minute, MaxConns: 2})))
		first, second := dial(t, long), dial(t, long)
		for _, c := range []net.Conn{first, second} {
			if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
				t.Fatal(err)
			}
			if _, err := http.ReadResponse(bufio.NewReader(c), nil); err != nil {
				t.Fatal(err)
			}
		}
		third := dial(t, long)
		if _, err := io.WriteString(third, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		r := bufio.NewReader(third)
		_ = third.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		if _, err := r.Peek(1); err == nil {
			t.Fatal("a third connection was served while two were open, MaxConns 2")
		}
		_ = first.Close()
		_ = third.SetReadDeadline(time.Now().Add(10 * time.Second))
		resp, err := http.ReadResponse(r, nil)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("third connection after one closed: %v %v", resp, err)
		}
	})
}

// TestTerseReadiness: a public server's /readyz says which dependency is
// down, not the error, which names internal addresses.
func TestTerseReadiness(t *testing.T) {
	down := func(context.Context) error { return errors.New("dial tcp 10.1.2.3:6379: connection refused") }
	tests := []struct {
		name     string
		opts     []ops.Option
		wantBody string
	}{
		{"internal", nil, "10.1.2.3"},
		{"public", []ops.Option{ops.WithTerseReadiness()}, `"redis":"unavailable"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base := serve(t, ops.New("127.0.0.1:0", append(tt.opts, ops.WithCheck("redis", down))...))
			code, _, body := get(t, "GET", base+"/readyz")
			if code != http.StatusServiceUnavailable || !strings.Contains(string(body), tt.wantBody) {
				t.Errorf("/readyz = %d %s, want 503 containing %s", code, body, tt.wantBody)
			}
			if tt.opts != nil && strings.Contains(string(body), "10.1.2.3") {
				t.Errorf("public /readyz shows the error: %s", body)
			}
		})
	}
}
