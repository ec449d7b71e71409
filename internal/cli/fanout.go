package cli

import (
	"context"
	"errors"
)

// runFanout is built by the fanout issue; this placeholder keeps the command table whole.
func runFanout(_ context.Context, _ Env, _ []string) error {
	return errors.New("fanout: not implemented yet")
}
