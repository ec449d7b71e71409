package cli

import (
	"context"
	"errors"
)

// runDeliverer is built by the deliverer issue; this placeholder keeps the command table whole.
func runDeliverer(_ context.Context, _ Env, _ []string) error {
	return errors.New("deliverer: not implemented yet")
}
