// Package config binds command-line flags to HOOKSTREAM_* environment
// variables: a flag given on the command line wins, then the environment,
// then the flag's default.
package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
)

// EnvPrefix is prepended to every flag's upper-cased name.
const EnvPrefix = "HOOKSTREAM_"

// EnvName returns the environment variable for a flag: "kafka-brokers" ->
// "HOOKSTREAM_KAFKA_BROKERS".
func EnvName(flagName string) string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// Parse parses args into fs and then fills every flag not given on the
// command line from the environment, looked up through getenv (os.LookupEnv
// in production). Errors name the flag and its variable. --help prints
// usage with the variable of each flag and returns flag.ErrHelp.
func Parse(fs *flag.FlagSet, args []string, getenv func(string) (string, bool)) error {
	fs.Usage = func() { Usage(fs, fs.Output()) }
	if err := fs.Parse(args); err != nil {
		return err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] {
			return
		}
		v, ok := getenv(EnvName(f.Name))
		if !ok {
			return
		}
		if err := fs.Set(f.Name, v); err != nil {
			errs = append(errs, fmt.Errorf("invalid %s=%q: %w", EnvName(f.Name), v, err))
		}
	})
	return errors.Join(errs...)
}

// Usage writes the flags of fs, each with its environment variable.
func Usage(fs *flag.FlagSet, w io.Writer) {
	fmt.Fprintf(w, "Usage: hookstream %s [flags]\n\nFlags (each also read from its environment variable):\n", fs.Name())
	fs.VisitAll(func(f *flag.Flag) {
		name, usage := flag.UnquoteUsage(f)
		fmt.Fprintf(w, "  -%s %s\t(env %s)\n    \t%s", f.Name, name, EnvName(f.Name), usage)
		if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" {
			fmt.Fprintf(w, " (default %q)", f.DefValue)
		}
		fmt.Fprintln(w)
	})
}

// StringList is a flag.Value holding a comma-separated list.
type StringList []string

func (l *StringList) String() string { return strings.Join(*l, ",") }

// Set splits v on commas, dropping empty items.
func (l *StringList) Set(v string) error {
	*l = (*l)[:0]
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*l = append(*l, s)
		}
	}
	return nil
}
