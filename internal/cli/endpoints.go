package cli

import (
	"context"
	"errors"
)

// runEndpoints is built by the endpoints issue; this placeholder keeps the command table whole.
func runEndpoints(_ context.Context, _ Env, _ []string) error {
	return errors.New("endpoints: not implemented yet")
}
