package cli

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"github.com/hookstream/hookstream/internal/config"
	"github.com/hookstream/hookstream/signature"
)

// runVerify checks a saved webhook request the way a receiver's
// signature.Verify would, so a customer (or support) can tell a wrong
// secret from a stale request or a body altered on the way.
func runVerify(_ context.Context, env Env, args []string) error {
	fs := flag.NewFlagSet("verify", flag.ContinueOnError)
	headersPath := fs.String("headers", "", `file of the request's headers, one "Name: value" per line (a saved request line and body after a blank line are ignored); "-" for stdin`)
	bodyPath := fs.String("body", "", `file holding the exact request body bytes; "-" for stdin`)
	var secrets config.StringList
	fs.Var(&secrets, "secret", "the endpoint's secret(s), whsec_..., comma-separated; any may match (prefer the environment variable: arguments show in ps)")
	brand := fs.String("signature-brand", signature.DefaultBrand, "brand of the seed scheme's X-<Brand>-Signature headers")
	tolerance := fs.Duration("tolerance", signature.DefaultTolerance, "how far the signed timestamp may be from --at, either way")
	at := fs.String("at", "", "check the timestamp as of this time, RFC 3339 or unix seconds, e.g. when a saved request arrived (default: now)")
	if err := parse(fs, env, args); err != nil {
		return err
	}
	switch {
	case *headersPath == "" || *bodyPath == "":
		return fmt.Errorf("%w: --headers and --body are required", ErrUsage)
	case *headersPath == "-" && *bodyPath == "-":
		return fmt.Errorf("%w: only one of --headers and --body can be stdin", ErrUsage)
	case len(secrets) == 0:
		return fmt.Errorf("%w: --secret is required", ErrUsage)
	}
	opts := []signature.VerifyOption{signature.WithBrand(*brand), signature.WithTolerance(*tolerance)}
	if *at != "" {
		t, err := parseTime(*at)
		if err != nil {
			return fmt.Errorf("%w: --at: %w", ErrUsage, err)
		}
		opts = append(opts, signature.WithNow(func() time.Time { return t }))
	}

	rawHeaders, err := readInput(env, *headersPath)
	if err != nil {
		return fmt.Errorf("--headers: %w", err)
	}
	h, err := signature.ReadHeaders(bytes.NewReader(rawHeaders))
	if err != nil {
		return fmt.Errorf("--headers %s: %w", *headersPath, err)
	}
	body, err := readInput(env, *bodyPath)
	if err != nil {
		return fmt.Errorf("--body: %w", err)
	}
	if err := signature.Verify(h, body, secrets, opts...); err != nil {
		return err
	}
	fmt.Fprintln(env.Stdout, "signature valid")
	return nil
}

// readInput reads the file at path, or stdin for "-".
func readInput(env Env, path string) ([]byte, error) {
	if path == "-" {
		return io.ReadAll(env.Stdin)
	}
	return os.ReadFile(path)
}

func parseTime(s string) (time.Time, error) {
	if sec, err := strconv.ParseInt(s, 10, 64); err == nil {
		return time.Unix(sec, 0), nil
	}
	return time.Parse(time.RFC3339, s)
}
