package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/hookstream/hookstream/internal/config"
	"github.com/hookstream/hookstream/schemas"
)

// runSchemas is `hookstream schemas import FILE`: it writes the OpenAPI
// document's webhooks as catalog schema files into --dir, never over an
// existing file.
func runSchemas(_ context.Context, env Env, args []string) error {
	if len(args) == 0 || args[0] != "import" {
		return fmt.Errorf("%w: hookstream schemas import [--dir schemas] openapi.json", ErrUsage)
	}
	fs := flag.NewFlagSet("schemas import", flag.ContinueOnError)
	dir := fs.String("dir", "schemas", "catalog directory to write <type>.json files into (rebuild to embed them)")
	fs.SetOutput(env.Stderr)
	if err := config.Parse(fs, args[1:], env.LookupEnv); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%w: %w", ErrUsage, err)
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("%w: name one OpenAPI 3.1 document", ErrUsage)
	}
	raw, err := os.ReadFile(fs.Arg(0))
	if err != nil {
		return err
	}
	files, err := schemas.ImportOpenAPI(raw)
	if err != nil {
		return err
	}
	for _, f := range files {
		if _, err := os.Stat(filepath.Join(*dir, f.Name)); err == nil {
			return fmt.Errorf("%s exists: the catalog already has that type; nothing was written", filepath.Join(*dir, f.Name))
		} else if !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	for _, f := range files {
		p := filepath.Join(*dir, f.Name)
		if err := os.WriteFile(p, f.JSON, 0o644); err != nil {
			return err
		}
		fmt.Fprintln(env.Stdout, p)
	}
	return nil
}
