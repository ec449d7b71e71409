package cli

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"time"
)

// runHealthcheck exists because distroless images have no curl or shell for
// container healthchecks.
func runHealthcheck(ctx context.Context, env Env, args []string) error {
	fs := flag.NewFlagSet("healthcheck", flag.ContinueOnError)
	url := fs.String("url", "http://127.0.0.1:9090/healthz", "URL that must answer 2xx")
	timeout := fs.Duration("timeout", 3*time.Second, "request timeout")
	if err := parse(fs, env, args); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, *url, nil)
	if err != nil {
		return fmt.Errorf("%w: --url: %w", ErrUsage, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s answered %s", *url, resp.Status)
	}
	return nil
}
