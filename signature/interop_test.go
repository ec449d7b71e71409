package signature_test

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hookstream/hookstream/signature"
)

// seedFile is the seed document holding the Node, Python and PHP verifiers,
// at ../shared/seeds relative to the module root.
var seedFile = filepath.Join("..", "..", "shared", "seeds", "000_78a8247fb9e0d761.txt")

// seedVerifiers run the seed's verifiers, copied into testdata, as real
// processes: argv is PAYLOAD_FILE SIGNATURE SECRET; exit 0 accepts, 1
// rejects (the function returned false), 2 means it threw.
var seedVerifiers = []struct {
	bin, script, function string
}{
	{"node", "seed_verify.js", "function verifyWebhookSignature(payload, signature, secret) {"},
	{"python3", "seed_verify.py", "def verify_signature(payload: bytes, signature: str, secret: str) -> bool:"},
	{"php", "seed_verify.php", "function verifySignature(string $payload, string $signature, string $secret): bool {"},
}

// TestSeedVerifiersVerbatim checks that the verifier code in testdata is the
// seed's, so the interop test proves what customers run. The seed page lost
// all indentation, so lines are compared without leading whitespace (Python
// needs it back); the Node and PHP copies must match byte for byte.
func TestSeedVerifiersVerbatim(t *testing.T) {
	seed, err := os.ReadFile(seedFile)
	if errors.Is(err, fs.ErrNotExist) {
		t.Skipf("%s not reachable; nothing to compare with", seedFile)
	}
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range seedVerifiers {
		t.Run(v.script, func(t *testing.T) {
			src, err := os.ReadFile(filepath.Join("testdata", v.script))
			if err != nil {
				t.Fatal(err)
			}
			block := verbatimBlock(t, string(src))
			if !strings.Contains(block, v.function) {
				t.Fatalf("verbatim block lacks %q", v.function)
			}
			if !strings.Contains(unindent(string(seed)), unindent(block)) {
				t.Fatalf("verbatim block of %s does not appear in the seed:\n%s", v.script, block)
			}
			if v.bin != "python3" && !strings.Contains(string(seed), block) {
				t.Fatalf("verbatim block of %s differs from the seed in whitespace", v.script)
			}
		})
	}
}

// verbatimBlock returns the lines between the BEGIN and END seed verbatim
// markers, newline-terminated.
func verbatimBlock(t *testing.T, src string) string {
	t.Helper()
	_, rest, ok := strings.Cut(src, "BEGIN seed verbatim\n")
	if !ok {
		t.Fatal("no BEGIN seed verbatim marker")
	}
	i := strings.Index(rest, "END seed verbatim")
	if i < 0 {
		t.Fatal("no END seed verbatim marker")
	}
	block := rest[:i]
	// Drop the END line's comment leader ("// " or "# ").
	block = block[:strings.LastIndexByte(block, '\n')+1]
	if strings.Count(block, "\n") < 3 {
		t.Fatalf("verbatim block too short: %q", block)
	}
	return block
}

func unindent(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = strings.TrimLeft(l, " \t")
	}
	return strings.Join(lines, "\n")
}

// received is what a real receiver saw: exact headers and body bytes.
type received struct {
	h    http.Header
	body []byte
}

// deliver POSTs body signed by s through a real http.Client to a real
// server and returns what the server received.
func deliver(t *testing.T, s *signature.Signer, scheme signature.Scheme, secrets []string, id, eventType string, body []byte) received {
	t.Helper()
	got := make(chan received, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		got <- received{h: r.Header.Clone(), body: b}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(srv.Close)

	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, srv.URL, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if err := s.Sign(req.Header, scheme, secrets, id, eventType, time.Now(), body); err != nil {
		t.Fatal(err)
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("server answered %s", resp.Status)
	}
	r := <-got
	if !bytes.Equal(r.body, body) {
		t.Fatalf("server received %q, want %q", r.body, body)
	}
	return r
}

// run runs a verifier script and returns its exit code.
func run(t *testing.T, bin string, args ...string) int {
	t.Helper()
	path, err := exec.LookPath(bin)
	if err != nil {
		t.Skipf("%s not installed", bin)
	}
	var stderr bytes.Buffer
	cmd := exec.CommandContext(t.Context(), path, args...)
	cmd.Stderr = &stderr
	err = cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &exit):
		if stderr.Len() > 0 {
			t.Logf("%s %s: stderr: %s", bin, args[0], stderr.Bytes())
		}
		return exit.ExitCode()
	}
	t.Fatalf("running %s: %v", bin, err)
	return -1
}

func writeFile(t *testing.T, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// envelope is a canonical event as receivers get it, with non-ASCII text so
// that every language must treat the body as bytes.
var envelope = []byte(`{"id":"evt_22b468b406512fa0ec9fab33","event":"billing.usage_alert","timestamp":"2026-03-04T12:00:00+00:00","data":{"resource":"api_calls","current":9500,"limit":10000,"percentage":95,"note":"Zoë – ✓ \"quoted\" \\ back"}}`)

// TestSeedInterop proves the seed scheme against the seed's own verifiers,
// run unchanged in Node, Python and PHP on what a real server received.
func TestSeedInterop(t *testing.T) {
	newest, old := newSecret(t), newSecret(t)
	s := signature.NewSigner(signature.WithBrand("Alfred"))
	r := deliver(t, s, signature.Seed, []string{newest, old}, "evt_22b468b406512fa0ec9fab33", "billing.usage_alert", envelope)

	if v := r.h.Values("X-Alfred-Signature"); len(v) != 1 {
		t.Fatalf("X-Alfred-Signature = %q, want one value", v)
	}
	sig := r.h.Get("X-Alfred-Signature")
	if got := r.h.Get("X-Alfred-Event"); got != "billing.usage_alert" {
		t.Errorf("X-Alfred-Event = %q", got)
	}
	if got := r.h.Get("X-Alfred-Delivery"); got != "evt_22b468b406512fa0ec9fab33" {
		t.Errorf("X-Alfred-Delivery = %q", got)
	}
	if err := signature.Verify(r.h, r.body, []string{newest}, signature.WithBrand("Alfred")); err != nil {
		t.Errorf("Go Verify of the received request: %v", err)
	}

	payload := writeFile(t, "payload.json", r.body)
	tampered := writeFile(t, "tampered.json", bytes.Replace(r.body, []byte("9500"), []byte("9501"), 1))
	tests := []struct {
		name    string
		payload string
		secret  string
		want    int
	}{
		{"accepts", payload, newest, 0},
		{"rejects tampered body", tampered, newest, 1},
		{"rejects the older rotating secret", payload, old, 1},
	}
	for _, v := range seedVerifiers {
		for _, tt := range tests {
			t.Run(v.bin+"/"+tt.name, func(t *testing.T) {
				t.Parallel()
				script := filepath.Join("testdata", v.script)
				if got := run(t, v.bin, script, tt.payload, sig, tt.secret); got != tt.want {
					t.Fatalf("%s exited %d, want %d", v.script, got, tt.want)
				}
			})
		}
	}
}

// TestStandardInterop cross-checks Standard Webhooks signatures with an
// independent verifier in Python.
func TestStandardInterop(t *testing.T) {
	const script = "testdata/standard_verify.py"
	t.Run("spec vector", func(t *testing.T) {
		p := writeFile(t, "spec.json", []byte(specPayload))
		if got := run(t, "python3", script, p, specID, "1614265330", specSig, specSecret); got != 0 {
			t.Fatalf("python rejected the spec vector: exit %d", got)
		}
		if got := run(t, "python3", script, p, specID, "1614265331", specSig, specSecret); got != 1 {
			t.Fatalf("python with a wrong timestamp: exit %d, want 1", got)
		}
	})

	newest, old, other := newSecret(t), newSecret(t), newSecret(t)
	r := deliver(t, signature.NewSigner(), signature.Standard, []string{newest, old}, "evt_22b468b406512fa0ec9fab33", "billing.usage_alert", envelope)
	id, ts, sig := r.h.Get("webhook-id"), r.h.Get("webhook-timestamp"), r.h.Get("webhook-signature")
	if err := signature.Verify(r.h, r.body, []string{old}); err != nil {
		t.Errorf("Go Verify of the received request: %v", err)
	}
	payload := writeFile(t, "payload.json", r.body)
	tampered := writeFile(t, "tampered.json", append(bytes.Clone(r.body), '\n'))
	tests := []struct {
		name, payload, id, secret string
		want                      int
	}{
		{"newest secret", payload, id, newest, 0},
		{"old secret", payload, id, old, 0},
		{"other secret", payload, id, other, 1},
		{"tampered body", tampered, id, newest, 1},
		{"tampered id", payload, id + "x", newest, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := run(t, "python3", script, tt.payload, tt.id, ts, sig, tt.secret); got != tt.want {
				t.Fatalf("standard_verify.py exited %d, want %d", got, tt.want)
			}
		})
	}
}
