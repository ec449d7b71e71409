package sender

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// rawReceiver accepts connections on 127.0.0.1 and runs serve on each.
func rawReceiver(t *testing.T, serve func(c net.Conn, n int)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for n := 0; ; n++ {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				serve(c, n)
			}()
		}
	}()
	return "http://" + ln.Addr().String()
}

// readRequest reads one request and its body from br.
func readRequest(br *bufio.Reader) (*http.Request, []byte, error) {
	r, err := http.ReadRequest(br)
	if err != nil {
		return nil, nil, err
	}
	b, err := io.ReadAll(r.Body)
	return r, b, err
}

// TestH1StaleConnection: a receiver that closes each connection after one
// answer, without saying so. The next attempt finds its pooled connection
// dead and must go out again on a fresh one, not fail; every attempt
// reaches the receiver exactly once.
func TestH1StaleConnection(t *testing.T) {
	var hits atomic.Int32
	url := rawReceiver(t, func(c net.Conn, _ int) {
		if _, _, err := readRequest(bufio.NewReader(c)); err != nil {
			return
		}
		hits.Add(1)
		io.WriteString(c, "HTTP/1.1 204 No Content\r\n\r\n")
	})
	s := New(WithAllowPrivate(true))
	for i := range 5 {
		res := s.Send(context.Background(), Request{URL: url, Body: body, EventID: eventID, Secrets: []string{newSecret(t)}})
		if res.Outcome != Delivered {
			t.Fatalf("send %d: %+v, want Delivered", i, res)
		}
		time.Sleep(20 * time.Millisecond) // let the close reach the client
	}
	if n := hits.Load(); n != 5 {
		t.Fatalf("receiver answered %d requests, want 5", n)
	}
}

// TestH1Framing: answers the client must parse right to keep a connection
// usable: an interim 103, a chunked body with a trailer, Connection: close.
func TestH1Framing(t *testing.T) {
	tests := []struct {
		name    string
		answer  string
		status  int
		body    string
		reuse   bool
		wantErr bool
	}{
		{"103 then 200", "HTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", 200, "ok", true, false},
		{"chunked with trailer", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\nX-T: 1\r\n\r\n", 200, "abcde", true, false},
		{"connection close", "HTTP/1.1 500 Internal Server Error\r\nConnection: close\r\nContent-Length: 3\r\n\r\nbad", 500, "bad", false, false},
		{"headers too long", "HTTP/1.1 200 OK\r\nX-Big: " + strings.Repeat("a", 70<<10) + "\r\n\r\n", 0, "", false, true},
		{"not http", "SSH-2.0-OpenSSH\r\n\r\n", 0, "", false, true},
		// Bytes past the answer would be read as the next request's.
		{"bytes past the answer", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 500 Stale\r\nContent-Length: 0\r\n\r\n", 200, "ok", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var conns atomic.Int32
			url := rawReceiver(t, func(c net.Conn, _ int) {
				conns.Add(1)
				br := bufio.NewReader(c)
				for {
					r, b, err := readRequest(br)
					if err != nil {
						return
					}
					if r.Method != http.MethodPost || string(b) != string(body) || r.ContentLength != int64(len(body)) {
						io.WriteString(c, "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
						continue
					}
					io.WriteString(c, tt.answer)
				}
			})
			s := New(WithAllowPrivate(true), WithTimeout(5*time.Second))
			for i := range 2 {
				res := s.Send(context.Background(), Request{URL: url + "/p?q=1", Body: body, EventID: eventID, Secrets: []string{newSecret(t)}})
				if tt.wantErr {
					if res.Outcome != Failed || res.Err == nil || res.Status != 0 {
						t.Fatalf("send %d: %+v, want Failed with an error", i, res)
					}
					continue
				}
				if res.Err != nil || res.Status != tt.status || string(res.Body) != tt.body {
					t.Fatalf("send %d: status %d body %q err %v, want %d %q", i, res.Status, res.Body, res.Err, tt.status, tt.body)
				}
			}
			want := int32(2)
			if tt.reuse {
				want = 1
			}
			if n := conns.Load(); n != want {
				t.Errorf("2 sends used %d connections, want %d", n, want)
			}
		})
	}
}
