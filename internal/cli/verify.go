package cli

import (
	"context"
	"errors"
)

// runVerify is built by the verify issue; this placeholder keeps the command table whole.
func runVerify(_ context.Context, _ Env, _ []string) error {
	return errors.New("verify: not implemented yet")
}
