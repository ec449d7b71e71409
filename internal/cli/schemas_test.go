package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// TestSchemasImport: the command writes one file per webhook and refuses,
// writing nothing, when a type's file already exists.
func TestSchemasImport(t *testing.T) {
	dir := t.TempDir()
	doc := filepath.Join(dir, "openapi.json")
	err := os.WriteFile(doc, []byte(`{"openapi":"3.1.0","webhooks":{
	  "order.shipped":{"post":{"summary":"Shipped.","requestBody":{"content":{"application/json":{"schema":{"type":"object"},"example":{"order":1}}}}}},
	  "order.placed":{"post":{"summary":"Placed.","requestBody":{"content":{"application/json":{"schema":{"type":"object"},"example":{"order":1}}}}}}}}`), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "catalog")
	if err := os.Mkdir(out, 0o755); err != nil {
		t.Fatal(err)
	}
	env := Env{Stdout: &bytes.Buffer{}, Stderr: &bytes.Buffer{}, LookupEnv: func(string) (string, bool) { return "", false }}
	if code := Main(t.Context(), []string{"schemas", "import", "--dir", out, doc}, env); code != 0 {
		t.Fatalf("exit %d: %s", code, env.Stderr)
	}
	for _, f := range []string{"order.placed.json", "order.shipped.json"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Error(err)
		}
	}
	if err := os.Remove(filepath.Join(out, "order.placed.json")); err != nil {
		t.Fatal(err)
	}
	if code := Main(t.Context(), []string{"schemas", "import", "--dir", out, doc}, env); code == 0 {
		t.Fatal("import over an existing type succeeded")
	}
	if _, err := os.Stat(filepath.Join(out, "order.placed.json")); err == nil {
		t.Fatal("a refused import wrote a file")
	}
}
