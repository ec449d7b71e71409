package cli

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/hookstream/hookstream/deliverer"
	"github.com/hookstream/hookstream/internal/api"
	"github.com/hookstream/hookstream/internal/docs"
	"github.com/hookstream/hookstream/schemas"
	"github.com/hookstream/hookstream/signature"
)

// runDocs prints the AsyncAPI document, or with --out writes the static
// docs: index.html (the events page), openapi.json and asyncapi.json.
func runDocs(_ context.Context, env Env, args []string) error {
	fs := flag.NewFlagSet("docs", flag.ContinueOnError)
	out := fs.String("out", "", "directory to write index.html (the events page), openapi.json and asyncapi.json to (default: print asyncapi.json)")
	brand := fs.String("signature-brand", signature.DefaultBrand, "brand of the page and of the seed scheme's X-<Brand>-Signature headers")
	if err := parse(fs, env, args); err != nil {
		return err
	}
	cat, err := schemas.Load()
	if err != nil {
		return err
	}
	async, err := docs.AsyncAPI(cat, *brand)
	if err != nil {
		return err
	}
	if *out == "" {
		_, err := env.Stdout.Write(append(async, '\n'))
		return err
	}
	var page bytes.Buffer
	if err := docs.WritePage(&page, cat, docs.PageOptions{Brand: *brand, Schedule: deliverer.DefaultSchedule, Tolerance: signature.DefaultTolerance}); err != nil {
		return err
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return fmt.Errorf("--out: %w", err)
	}
	for name, b := range map[string][]byte{"index.html": page.Bytes(), "openapi.json": api.OpenAPI(), "asyncapi.json": async} {
		if err := os.WriteFile(filepath.Join(*out, name), b, 0o644); err != nil {
			return fmt.Errorf("--out: %w", err)
		}
	}
	return nil
}
