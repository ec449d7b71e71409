// Package signature signs outbound webhooks and verifies them on the
// receiving side.
//
// Two schemes exist. [Standard] is Standard Webhooks
// (https://www.standardwebhooks.com): headers webhook-id, webhook-timestamp
// and webhook-signature ("v1,<base64 HMAC-SHA256(key, id.timestamp.body)>"),
// with one signature per secret while a secret rotates. [Seed] is the scheme
// the first customers already verify with their own code:
// X-<Brand>-Signature ("sha256=<hex HMAC-SHA256(secret string, body)>") plus
// X-<Brand>-Timestamp, X-<Brand>-Event and X-<Brand>-Delivery.
//
// Secrets are "whsec_" followed by the standard base64 of 24 to 64 random
// bytes. Standard Webhooks keys the HMAC with the decoded bytes; the seed
// scheme keys it with the whole secret string, because that is what the
// seed verifiers do.
package signature

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
)

// SecretPrefix starts every secret.
const SecretPrefix = "whsec_"

// Key sizes accepted by ParseSecret, as recommended by Standard Webhooks.
const (
	MinSecretBytes = 24
	MaxSecretBytes = 64
)

// newSecretBytes is the size NewSecret generates: comfortably above the
// minimum, and the SHA-256 output size, so the HMAC key carries full strength.
const newSecretBytes = 32

// ErrInvalidSecret reports a secret that is not "whsec_" + standard base64
// of MinSecretBytes..MaxSecretBytes bytes, or an empty list of secrets.
var ErrInvalidSecret = errors.New("signature: invalid secret")

// NewSecret returns a fresh secret from crypto/rand.
func NewSecret() (string, error) {
	var b [newSecretBytes]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("signature: reading random bytes: %w", err)
	}
	return SecretPrefix + base64.StdEncoding.EncodeToString(b[:]), nil
}

// ParseSecret returns the Standard Webhooks HMAC key of secret: its base64
// part, decoded. Errors never include the secret, as they end up in logs.
func ParseSecret(secret string) ([]byte, error) {
	enc, ok := strings.CutPrefix(secret, SecretPrefix)
	if !ok {
		return nil, fmt.Errorf("%w: missing %q prefix", ErrInvalidSecret, SecretPrefix)
	}
	key, err := base64.StdEncoding.DecodeString(enc)
	if err != nil {
		return nil, fmt.Errorf("%w: part after %q is not standard base64", ErrInvalidSecret, SecretPrefix)
	}
	if len(key) < MinSecretBytes || len(key) > MaxSecretBytes {
		return nil, fmt.Errorf("%w: %d bytes, want %d to %d", ErrInvalidSecret, len(key), MinSecretBytes, MaxSecretBytes)
	}
	return key, nil
}
