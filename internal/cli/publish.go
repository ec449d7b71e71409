package cli

import (
	"context"
	"errors"
)

// runPublish is built by the publish issue; this placeholder keeps the command table whole.
func runPublish(_ context.Context, _ Env, _ []string) error {
	return errors.New("publish: not implemented yet")
}
