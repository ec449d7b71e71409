package subscription

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/idna"

	"github.com/hookstream/hookstream/internal/netguard"
)

// FuzzEndpointURL checks that a URL the strict validator accepts never
// names, as the HTTP client will dial it, an internal address or a
// loopback name. DNS is unreachable here (only /etc/hosts answers), so
// every name other than those in /etc/hosts is accepted as not resolving.
func FuzzEndpointURL(f *testing.F) {
	for _, seed := range []string{
		"http://１２７.０.０.１/",
		"http://ｌｏｃａｌｈｏｓｔ/",
		"http://localhost./x",
		"http://LOCALHOST/",
		"http://api.localhost./",
		"http://127.0.0.1./",
		"http://[::1]/",
		"http://[::ffff:127.0.0.1]/",
		"http://2130706433/",
		"http://0x7f.0x1/",
		"http://①②⑦.0.0.1/",
		"http://169.254.169.254/latest",
		"https://hooks.example.com/x",
		"https://93.184.215.14/hook",
	} {
		f.Add(seed)
	}
	v := &validator{
		resolver: &net.Resolver{PreferGo: true, Dial: func(context.Context, string, string) (net.Conn, error) {
			return nil, errors.New("no DNS in this test")
		}},
		lookupTimeout: time.Second,
	}
	f.Fuzz(func(t *testing.T, raw string) {
		if err := v.url(context.Background(), raw); err != nil {
			return
		}
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatalf("accepted %q, which does not parse: %v", raw, err)
		}
		host := u.Hostname()
		if a, err := idna.Lookup.ToASCII(host); err == nil {
			host = a
		}
		host = strings.TrimSuffix(strings.ToLower(host), ".")
		if ip, err := netip.ParseAddr(host); err == nil && !netguard.Allowed(ip) {
			t.Fatalf("accepted %q, which dials %s", raw, ip)
		}
		if host == "localhost" || strings.HasSuffix(host, ".localhost") {
			t.Fatalf("accepted %q, a loopback name", raw)
		}
	})
}
