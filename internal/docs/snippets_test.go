package docs_test

import (
	"bytes"
	"html"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/encoding/json"

	"github.com/hookstream/hookstream/internal/docs"
	"github.com/hookstream/hookstream/signature"
)

// pageSnippets extracts the snippets from the rendered page, so that what
// runs is what readers copy.
func pageSnippets(t *testing.T) map[string]string {
	t.Helper()
	var b bytes.Buffer
	if err := docs.WritePage(&b, catalog(t), docs.PageOptions{Brand: "Acme", Tolerance: 5 * time.Minute}); err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`(?s)<pre class="snippet" data-file="([^"]+)"><code>(.*?)</code></pre>`)
	out := map[string]string{}
	for _, m := range re.FindAllStringSubmatch(b.String(), -1) {
		out[m[1]] = html.UnescapeString(m[2])
	}
	return out
}

// TestSnippetsVerify: each language's snippet, as the page shows it,
// accepts a request the deliverers' signer signed, in both schemes, and
// rejects it with the body altered or the wrong secret.
func TestSnippetsVerify(t *testing.T) {
	snippets := pageSnippets(t)
	runners := map[string][]string{
		"verify.js":  {"node", "verify.js"},
		"verify.py":  {"python3", "verify.py"},
		"verify.php": {"php", "verify.php"},
		"verify.go":  {"go", "run", "verify.go"},
	}
	if len(snippets) != len(runners) {
		t.Fatalf("page has snippets %v, want %d", keys(snippets), len(runners))
	}
	secret, err := signature.NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	other, err := signature.NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	body := []byte(`{"id":"evt_1","event":"agent.created","timestamp":"2026-03-04T12:00:00+00:00","data":{"name":"Zoë"}}`)
	signer := signature.NewSigner(signature.WithBrand("Acme"))
	for file, argv := range runners {
		code, ok := snippets[file]
		if !ok {
			t.Errorf("page has no %s", file)
			continue
		}
		if _, err := exec.LookPath(argv[0]); err != nil {
			t.Fatalf("%s: %v (make deps installs it)", file, err)
		}
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, file), []byte(code), 0o600); err != nil {
			t.Fatal(err)
		}
		for _, scheme := range []signature.Scheme{signature.Standard, signature.Seed} {
			h := http.Header{}
			if err := signer.Sign(h, scheme, []string{secret}, "evt_1", "agent.created", time.Now(), body); err != nil {
				t.Fatal(err)
			}
			lower := map[string]string{}
			for k := range h {
				lower[strings.ToLower(k)] = h.Get(k)
			}
			hj, _ := json.Marshal(lower)
			tampered := bytes.Replace(body, []byte("Zoë"), []byte("Zoe"), 1)
			cases := []struct {
				name   string
				secret string
				body   []byte
				want   bool
			}{{"signed", secret, body, true}, {"body altered", secret, tampered, false}, {"other secret", other, body, false}}
			for _, c := range cases {
				cmd := exec.CommandContext(t.Context(), argv[0], argv[1:]...)
				cmd.Dir = dir
				cmd.Stdin = bytes.NewReader(c.body)
				cmd.Env = append(os.Environ(), "WEBHOOK_SECRET="+c.secret, "WEBHOOK_HEADERS="+string(hj), "BRAND=Acme")
				out, err := cmd.CombinedOutput()
				got := err == nil && strings.TrimSpace(string(out)) == "verified"
				if got != c.want {
					t.Errorf("%s, %s, %s: verified %v, want %v; output %q, err %v", file, scheme, c.name, got, c.want, out, err)
				}
			}
		}
	}
}

func keys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
