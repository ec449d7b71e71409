package cli

import (
	"io"
	"net/http"
	"net/http/cookiejar"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hookstream/hookstream/internal/testenv"
)

// TestPortalLinkCommand runs `hookstream api` with a portal key, prints a
// link with `hookstream portal-link`, signs in with it, and ends the
// session with --revoke.
func TestPortalLinkCommand(t *testing.T) {
	k := testenv.StartKafka(t)
	r := testenv.StartRedis(t)
	base, _ := startRole(t, "api", map[string]string{"HOOKSTREAM_API_TOKENS": "tok=acme,adm=*", "HOOKSTREAM_PORTAL_KEY": "a portal key, long enough",
		"HOOKSTREAM_PORTAL_NAME": "Acme Cloud"},
		"--kafka-brokers", k.Addr, "--redis-url", r.URL, "--http-addr", freeAddr(t), "--shutdown-grace", "2s")
	run := apiCLI(t, base, "tok")

	code, out, errOut := run("portal-link", "--capabilities", "manage_endpoints", "--expires-in", "10m")
	link := strings.TrimSpace(out)
	if code != 0 || !strings.HasPrefix(link, base+"/portal/start?token=") || !strings.Contains(errOut, "valid until") {
		t.Fatalf("portal-link: %d %q %q", code, out, errOut)
	}
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar, Timeout: 10 * time.Second}
	get := func(u string) (int, string) {
		t.Helper()
		resp, err := browser.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if st, body := get(link); st != 200 || !strings.Contains(body, "Acme Cloud") {
		t.Fatalf("opening the link: %d", st)
	}
	if st, body := get(base + "/portal/"); st != 200 || !strings.Contains(body, "Add endpoint") {
		t.Fatalf("portal after sign-in: %d", st)
	}

	if code, _, errOut := run("portal-link", "--capabilities", "admin"); code != 1 || !strings.Contains(errOut, "/capabilities/0") {
		t.Errorf("unknown capability: %d %q", code, errOut)
	}
	if code, _, errOut := run("portal-link", "--tenant", "globex"); code != 1 || !strings.Contains(errOut, "403") {
		t.Errorf("another tenant with a tenant token: %d %q", code, errOut)
	}
	if code, out, _ := run("portal-link", "--revoke"); code != 0 || !strings.Contains(out, "revoked") {
		t.Fatalf("--revoke: %d %q", code, out)
	}
	if st, body := get(base + "/portal/"); st != http.StatusUnauthorized || strings.Contains(body, "Add endpoint") {
		t.Errorf("portal after revoke: %d, want 401", st)
	}
}

var portalLine = regexp.MustCompile(`^customer portal for tenant demo .*: (http://\S+/portal/start\?token=\S+)$`)

// TestDevPortalLink: `hookstream dev` prints a working portal link with
// every capability, and keeps its portal key in the data directory, so a
// link printed before a restart still signs in after it.
func TestDevPortalLink(t *testing.T) {
	dir := t.TempDir()
	args := []string{"--data-dir", "data", "--kafka-addr", freeAddr(t), "--http-addr", freeAddr(t), "--shutdown-grace", "3s"}
	p := startDev(t, dir, args...)
	first := p.waitMatch(portalLine)[1]
	p.stop(3 * time.Second)
	if b, err := os.ReadFile(filepath.Join(dir, "data", "portal-key")); err != nil || len(strings.TrimSpace(string(b))) < 16 {
		t.Fatalf("portal key not kept: %q, %v", b, err)
	}

	p = startDev(t, dir, args...)
	p.waitMatch(portalLine)
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar, Timeout: 10 * time.Second}
	for _, u := range []string{first, strings.Split(first, "/start")[0] + "/"} {
		resp, err := browser.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("GET %s after a restart: %d", u, resp.StatusCode)
		}
		if strings.HasSuffix(u, "/") && !strings.Contains(string(b), "Add endpoint") {
			t.Errorf("the dev link lacks manage_endpoints")
		}
	}
	p.stop(3 * time.Second)
}
