package sender

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"syscall"
	"time"

	"golang.org/x/net/http/httpguts"
)

// h1 posts to plain http:// endpoints over pooled HTTP/1.1 keep-alive
// connections, writing the request and reading the answer on the caller's
// goroutine. net/http's transport runs two goroutines per connection and
// hands every request and response between them through channels; under
// load that hand-off was half of the deliverer's CPU. https:// stays on
// net/http (TLS, HTTP/2).
//
// What the transport guaranteed, h1 keeps: it dials through the same
// net.Dialer (connect timeout, netguard.Control), bounds the whole attempt
// by the connection's deadline, reads at most maxHeader bytes of response
// headers, never follows a redirect (it only ever sends one request), uses
// no proxy and asks for no compression.
type h1 struct {
	dialer    *net.Dialer
	maxIdle   int           // idle connections kept per address
	idleFor   time.Duration // an idle connection older than this is closed
	maxHeader int64

	mu        sync.Mutex
	idle      map[string][]*h1Conn // by dial address; newest last
	lastSweep time.Time
}

type h1Conn struct {
	nc     net.Conn
	lr     limitReader
	idleAt time.Time
}

// A connection holds its buffers only during an exchange: with thousands
// of endpoints most connections sit idle, and 8 KiB each of idle buffers
// was a fifth of the deliverer's heap in bench (h).
var (
	readers = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 4<<10) }}
	writers = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 4<<10) }}
)

// limitReader fails reads past n bytes, so that response headers cannot
// grow without bound; it is lifted for the body, whose reading readBody caps.
type limitReader struct {
	r io.Reader
	n int64
}

var errHeaderTooLong = errors.New("sender: response headers too long")

func (l *limitReader) Read(p []byte) (int, error) {
	if l.n <= 0 {
		return 0, errHeaderTooLong
	}
	if int64(len(p)) > l.n {
		p = p[:l.n]
	}
	n, err := l.r.Read(p)
	l.n -= int64(n)
	return n, err
}

const unlimited = 1 << 62

func newH1(d *net.Dialer, maxIdle int, idleFor time.Duration, maxHeader int64) *h1 {
	return &h1{dialer: d, maxIdle: maxIdle, idleFor: idleFor, maxHeader: maxHeader, idle: map[string][]*h1Conn{}}
}

// h1Target is where a request goes: the dial address and the Host header.
// ok is false for requests h1 leaves to net/http.
func h1Target(hreq *http.Request) (addr, host string, ok bool) {
	u := hreq.URL
	if u.Scheme != "http" || u.User != nil {
		return "", "", false
	}
	host = u.Host
	for i := 0; i < len(host); i++ {
		if host[i] >= 0x80 { // an IDN: net/http converts it to punycode
			return "", "", false
		}
	}
	if !httpguts.ValidHostHeader(host) {
		return "", "", false
	}
	port := u.Port()
	if port == "" {
		port = "80"
	}
	hostname := u.Hostname()
	if hostname == "" {
		return "", "", false
	}
	return net.JoinHostPort(hostname, port), host, true
}

// errRetryable marks a failure on a reused connection before any byte of
// an answer arrived: the receiver had closed the idle connection.
type errRetryable struct{ err error }

func (e errRetryable) Error() string { return e.err.Error() }
func (e errRetryable) Unwrap() error { return e.err }

// roundTrip sends hreq to addr and returns the response with its body read
// (up to maxBody bytes, the first LoggedBody of them kept). The connection's
// deadline is ctx's; when ctx is cancelled the deadline moves to now.
func (h *h1) roundTrip(ctx context.Context, hreq *http.Request, addr, host string, body []byte, maxBody int64) (*http.Response, []byte, bool, error) {
	for try := 0; ; try++ {
		c, reused, err := h.get(ctx, addr)
		if err != nil {
			return nil, nil, false, err
		}
		resp, out, more, err := h.exchange(ctx, c, addr, hreq, host, body, maxBody, reused)
		var re errRetryable
		if err != nil && try == 0 && errors.As(err, &re) && ctx.Err() == nil {
			continue
		}
		if err != nil {
			return nil, nil, false, unwrapRetryable(err)
		}
		return resp, out, more, nil
	}
}

func unwrapRetryable(err error) error {
	var re errRetryable
	if errors.As(err, &re) {
		return re.err
	}
	return err
}

func (h *h1) exchange(ctx context.Context, c *h1Conn, addr string, hreq *http.Request, host string, body []byte, maxBody int64, reused bool) (resp *http.Response, out []byte, more bool, err error) {
	if dl, ok := ctx.Deadline(); ok {
		_ = c.nc.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = c.nc.SetDeadline(time.Unix(1, 0)) })
	keep := false
	br := readers.Get().(*bufio.Reader)
	br.Reset(&c.lr)
	defer func() {
		// Bytes past the answer would be read as the next one's: such a
		// connection is not reused.
		keep = keep && br.Buffered() == 0
		br.Reset(nil)
		readers.Put(br)
		// A false stop means ctx ended and the deadline may be in the past
		// by now: the connection is not reused then.
		if stop() && keep {
			h.put(addr, c)
			return
		}
		c.nc.Close()
	}()

	bw := writers.Get().(*bufio.Writer)
	bw.Reset(c.nc)
	writeRequest(bw, hreq, host, body)
	err = bw.Flush()
	bw.Reset(nil)
	writers.Put(bw)
	if err != nil {
		if reused && brokenConn(err) {
			return nil, nil, false, errRetryable{err}
		}
		return nil, nil, false, err
	}
	c.lr.n = h.maxHeader
	for {
		resp, err = http.ReadResponse(br, hreq)
		if err != nil {
			// Nothing of an answer came: lr.n is untouched.
			if reused && (errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || brokenConn(err)) && c.lr.n == h.maxHeader {
				return nil, nil, false, errRetryable{err}
			}
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return nil, nil, false, err
		}
		// 1xx answers other than 101 are interim (e.g. 103 Early Hints);
		// the final answer follows.
		if resp.StatusCode >= 100 && resp.StatusCode <= 199 && resp.StatusCode != http.StatusSwitchingProtocols {
			continue
		}
		break
	}
	c.lr.n = unlimited
	if resp.StatusCode == http.StatusSwitchingProtocols {
		return resp, nil, false, nil // not reused: keep is false
	}
	var eof bool
	out, more, eof = readCapped(resp.Body, maxBody)
	keep = eof && !resp.Close
	return resp, out, more, nil
}

func brokenConn(err error) bool {
	return errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNABORTED)
}

// writeRequest writes the request line, the headers and the body. Header
// values were validated (custom headers) or are the Sender's own; the
// Header's writer still replaces any newline with a space.
func writeRequest(w *bufio.Writer, hreq *http.Request, host string, body []byte) {
	w.WriteString("POST ")
	w.WriteString(hreq.URL.RequestURI())
	w.WriteString(" HTTP/1.1\r\nHost: ")
	w.WriteString(host)
	w.WriteString("\r\nContent-Length: ")
	var n [20]byte
	w.Write(strconv.AppendInt(n[:0], int64(len(body)), 10))
	w.WriteString("\r\n")
	_ = hreq.Header.Write(w)
	w.WriteString("\r\n")
	w.Write(body)
}

// readCapped reads up to maxBody bytes of body, returns a copy of the first
// LoggedBody of them, whether there was more, and whether the body was read
// to its end (so its connection can be reused). It does not close body:
// http.ReadResponse's body would read the rest of it on Close.
func readCapped(body io.Reader, maxBody int64) (out []byte, more, eof bool) {
	buf := bodyBufs.Get().(*[LoggedBody]byte)
	defer bodyBufs.Put(buf)
	keep := int(min(maxBody, LoggedBody))
	n, err := io.ReadFull(body, buf[:keep])
	if n > 0 {
		out = append([]byte(nil), buf[:n]...)
	}
	switch {
	case err == io.EOF || err == io.ErrUnexpectedEOF:
		return out, false, true
	case err != nil:
		return out, false, false
	}
	// One byte past the cap, so that a body of exactly maxBody bytes does
	// not read as truncated.
	limit := max(maxBody-int64(keep), 0) + 1
	rest, err := io.CopyN(io.Discard, body, limit)
	return out, rest > 0, err == io.EOF && rest < limit
}

// get returns an idle connection to addr (reused true), or dials one.
func (h *h1) get(ctx context.Context, addr string) (*h1Conn, bool, error) {
	now := time.Now()
	h.mu.Lock()
	for {
		cs := h.idle[addr]
		if len(cs) == 0 {
			break
		}
		c := cs[len(cs)-1]
		cs[len(cs)-1] = nil
		h.idle[addr] = cs[:len(cs)-1]
		if now.Sub(c.idleAt) < h.idleFor {
			h.mu.Unlock()
			return c, true, nil
		}
		c.nc.Close()
	}
	h.mu.Unlock()
	nc, err := h.dialer.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, false, err
	}
	c := &h1Conn{nc: nc}
	c.lr = limitReader{r: nc, n: unlimited}
	return c, false, nil
}

// put keeps c for reuse, at most maxIdle per address, and now and then
// closes connections idle for longer than idleFor.
func (h *h1) put(addr string, c *h1Conn) {
	now := time.Now()
	c.idleAt = now
	h.mu.Lock()
	defer h.mu.Unlock()
	if now.Sub(h.lastSweep) > h.idleFor/2 {
		h.lastSweep = now
		h.sweep(now.Add(-h.idleFor))
	}
	cs := h.idle[addr]
	if len(cs) >= h.maxIdle {
		c.nc.Close()
		return
	}
	h.idle[addr] = append(cs, c)
}

// sweep closes the connections idle since before t. h.mu is held.
func (h *h1) sweep(t time.Time) {
	for a, cs := range h.idle {
		i := 0
		for i < len(cs) && cs[i].idleAt.Before(t) { // oldest first
			cs[i].nc.Close()
			i++
		}
		if i == len(cs) {
			delete(h.idle, a)
		} else if i > 0 {
			h.idle[a] = append(cs[:0], cs[i:]...)
		}
	}
}

func (h *h1) closeIdle() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.sweep(time.Now().Add(time.Hour))
}
