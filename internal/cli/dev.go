package cli

import (
	"context"
	"errors"
)

// runDev is built by the dev issue; this placeholder keeps the command table whole.
func runDev(_ context.Context, _ Env, _ []string) error {
	return errors.New("dev: not implemented yet")
}
