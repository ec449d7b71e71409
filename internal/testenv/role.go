package testenv

import (
	"fmt"
	"net/http"
	"testing"
	"time"
)

// StartRole runs `bin role args... --http-addr <free port>` as its own
// process (see StartProcess) and waits until its /readyz answers 200. It
// returns the process and the base URL of its HTTP server.
func StartRole(t testing.TB, bin, role string, args ...string) (*Process, string) {
	t.Helper()
	base := fmt.Sprintf("http://127.0.0.1:%d", FreePort(t))
	p := StartProcess(t, bin, append(append([]string{role}, args...), "--http-addr", base[len("http://"):])...)
	client := &http.Client{Timeout: 2 * time.Second}
	p.WaitFor(t, role+" ready at "+base, time.Minute, func() bool {
		resp, err := client.Get(base + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return p, base
}
