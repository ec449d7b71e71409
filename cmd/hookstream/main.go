// Command hookstream delivers webhooks from Kafka. See README.md.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/hookstream/hookstream/internal/cli"
)

func main() {
	// SIGTERM (Kubernetes) and Ctrl-C cancel the context; every role then
	// drains within its shutdown grace.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, os.Args[1:], cli.Env{
		Stdin:     os.Stdin,
		Stdout:    os.Stdout,
		Stderr:    os.Stderr,
		LookupEnv: os.LookupEnv,
	})
	stop()
	os.Exit(code)
}
