package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hookstream/hookstream/internal/api"
	"github.com/hookstream/hookstream/internal/docs"
	"github.com/hookstream/hookstream/schemas"
)

// TestDocsCommand: without --out it prints the AsyncAPI document; with
// --out it writes the page and both documents.
func TestDocsCommand(t *testing.T) {
	cat, err := schemas.Load()
	if err != nil {
		t.Fatal(err)
	}
	want, err := docs.AsyncAPI(cat, "Acme")
	if err != nil {
		t.Fatal(err)
	}
	env := func(stdout *bytes.Buffer) Env {
		return Env{Stdout: stdout, Stderr: &bytes.Buffer{}, LookupEnv: func(k string) (string, bool) {
			if k == "HOOKSTREAM_SIGNATURE_BRAND" {
				return "Acme", true
			}
			return "", false
		}}
	}
	var stdout bytes.Buffer
	if code := Main(t.Context(), []string{"docs"}, env(&stdout)); code != 0 {
		t.Fatalf("exit %d", code)
	}
	if !bytes.Equal(bytes.TrimSpace(stdout.Bytes()), want) {
		t.Fatalf("stdout is not the Acme AsyncAPI document: %.200s", stdout.Bytes())
	}
	dir := filepath.Join(t.TempDir(), "site")
	if code := Main(t.Context(), []string{"docs", "--out", dir}, env(&stdout)); code != 0 {
		t.Fatalf("exit %d", code)
	}
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	if !bytes.Equal(read("asyncapi.json"), want) || !bytes.Equal(read("openapi.json"), api.OpenAPI()) {
		t.Fatal("asyncapi.json or openapi.json differ from the served documents")
	}
	page := string(read("index.html"))
	for _, ty := range cat.Types() {
		if !strings.Contains(page, `id="type-`+ty.Name+`"`) {
			t.Errorf("index.html lacks %s", ty.Name)
		}
	}
}
