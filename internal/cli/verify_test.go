package cli

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hookstream/hookstream/signature"
)

func TestVerifyCommand(t *testing.T) {
	secret, err := signature.NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	other, err := signature.NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	body := []byte(`{"id":"evt_1","event":"agent.created","timestamp":"2026-03-04T12:00:00+00:00","data":{}}`)
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// saved renders signed headers as a saved request: request line, headers.
	saved := func(name string, scheme signature.Scheme, brand string, ts time.Time) string {
		h := http.Header{"Content-Type": {"application/json"}}
		if err := signature.NewSigner(signature.WithBrand(brand)).Sign(h, scheme, []string{secret}, "evt_1", "agent.created", ts, body); err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		b.WriteString("POST /webhook HTTP/1.1\n")
		names := make([]string, 0, len(h))
		for n := range h {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			fmt.Fprintf(&b, "%s: %s\n", n, h.Get(n))
		}
		return write(name, []byte(b.String()))
	}
	now := time.Now()
	standard := saved("standard.txt", signature.Standard, "Hookstream", now)
	seed := saved("seed.txt", signature.Seed, "Alfred", now)
	old := saved("old.txt", signature.Standard, "Hookstream", now.Add(-time.Hour))
	bodyFile := write("body.json", body)
	tampered := write("tampered.json", append(bytes.Clone(body), ' '))

	tests := []struct {
		name      string
		args      []string
		env       map[string]string
		stdin     string
		wantCode  int
		wantInOut string // in stdout on success, stderr otherwise
	}{
		{"standard", []string{"--headers", standard, "--body", bodyFile, "--secret", secret}, nil, "", 0, "signature valid"},
		{"secret from env", []string{"--headers", standard, "--body", bodyFile}, map[string]string{"HOOKSTREAM_SECRET": other + "," + secret}, "", 0, "signature valid"},
		{"seed with brand", []string{"--headers", seed, "--body", bodyFile, "--secret", secret, "--signature-brand", "Alfred"}, nil, "", 0, "signature valid"},
		{"brand from env", []string{"--headers", seed, "--body", bodyFile, "--secret", secret}, map[string]string{"HOOKSTREAM_SIGNATURE_BRAND": "Alfred"}, "", 0, "signature valid"},
		{"body on stdin", []string{"--headers", standard, "--body", "-", "--secret", secret}, nil, string(body), 0, "signature valid"},
		{"wrong secret", []string{"--headers", standard, "--body", bodyFile, "--secret", other}, nil, "", 1, "no matching signature"},
		{"tampered body", []string{"--headers", standard, "--body", tampered, "--secret", secret}, nil, "", 1, "no matching signature"},
		{"seed without brand", []string{"--headers", seed, "--body", bodyFile, "--secret", secret}, nil, "", 1, "missing or malformed"},
		{"stale", []string{"--headers", old, "--body", bodyFile, "--secret", secret}, nil, "", 1, "timestamp out of range"},
		{"stale checked as of arrival", []string{"--headers", old, "--body", bodyFile, "--secret", secret, "--at", strconv.FormatInt(now.Add(-time.Hour).Unix(), 10)}, nil, "", 0, "signature valid"},
		{"stale with wide tolerance", []string{"--headers", old, "--body", bodyFile, "--secret", secret, "--tolerance", "2h"}, nil, "", 0, "signature valid"},
		{"at RFC 3339", []string{"--headers", old, "--body", bodyFile, "--secret", secret, "--at", now.Add(-time.Hour).Format(time.RFC3339)}, nil, "", 0, "signature valid"},
		{"invalid secret", []string{"--headers", standard, "--body", bodyFile, "--secret", "hunter2"}, nil, "", 1, "invalid secret"},
		{"missing file", []string{"--headers", filepath.Join(dir, "nope"), "--body", bodyFile, "--secret", secret}, nil, "", 1, "nope"},
		{"no secret", []string{"--headers", standard, "--body", bodyFile}, nil, "", 2, "--secret is required"},
		{"no body", []string{"--headers", standard, "--secret", secret}, nil, "", 2, "required"},
		{"both stdin", []string{"--headers", "-", "--body", "-", "--secret", secret}, nil, "", 2, "stdin"},
		{"bad --at", []string{"--headers", standard, "--body", bodyFile, "--secret", secret, "--at", "yesterday"}, nil, "", 2, "--at"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			env := Env{
				Stdin:  strings.NewReader(tt.stdin),
				Stdout: &stdout,
				Stderr: &stderr,
				LookupEnv: func(k string) (string, bool) {
					v, ok := tt.env[k]
					return v, ok
				},
			}
			code := Main(t.Context(), append([]string{"verify"}, tt.args...), env)
			out := stderr.String()
			if tt.wantCode == 0 {
				out = stdout.String()
			}
			if code != tt.wantCode || !strings.Contains(out, tt.wantInOut) {
				t.Fatalf("exit %d, stdout %q, stderr %q; want exit %d with %q", code, stdout.String(), stderr.String(), tt.wantCode, tt.wantInOut)
			}
		})
	}
}
