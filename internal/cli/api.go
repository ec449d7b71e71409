package cli

import (
	"context"
	"errors"
)

// runAPI is built by the api issue; this placeholder keeps the command table whole.
func runAPI(_ context.Context, _ Env, _ []string) error {
	return errors.New("api: not implemented yet")
}
