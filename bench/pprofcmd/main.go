// Command pprofcmd is cmd/hookstream plus net/http/pprof and expvar, served
// on $HOOKSTREAM_BENCH_PPROF_ADDR when set (nothing else differs: both call
// cli.Main). The benchmark runs the api from it to read its allocation
// counters (/debug/vars), and every role with -pprof to profile them under
// load; the roles themselves expose no profiling endpoint.
package main

import (
	"context"
	_ "expvar" // registers /debug/vars (memstats) on http.DefaultServeMux
	"net/http"
	_ "net/http/pprof" // registers /debug/pprof on http.DefaultServeMux
	"os"
	"os/signal"
	"syscall"

	"github.com/hookstream/hookstream/internal/cli"
)

func main() {
	if addr := os.Getenv("HOOKSTREAM_BENCH_PPROF_ADDR"); addr != "" {
		go func() { _ = http.ListenAndServe(addr, nil) }()
	}
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
