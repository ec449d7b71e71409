package signature

import (
	"errors"
	"fmt"
)

// Scheme selects how a delivery is signed.
type Scheme uint8

const (
	// Standard is Standard Webhooks, the default (and the zero value).
	Standard Scheme = iota
	// Seed is the X-<Brand>-Signature scheme the seed verifiers accept.
	Seed
)

// ErrInvalidScheme reports a scheme name other than "standard" or "seed".
var ErrInvalidScheme = errors.New("signature: invalid scheme")

// ParseScheme parses the names used in the endpoint API: "standard", "seed".
func ParseScheme(name string) (Scheme, error) {
	switch name {
	case "standard":
		return Standard, nil
	case "seed":
		return Seed, nil
	}
	return 0, fmt.Errorf("%w: %q, want \"standard\" or \"seed\"", ErrInvalidScheme, name)
}

// String returns the name ParseScheme accepts.
func (s Scheme) String() string {
	switch s {
	case Standard:
		return "standard"
	case Seed:
		return "seed"
	}
	return fmt.Sprintf("Scheme(%d)", uint8(s))
}

// MarshalText lets a Scheme appear by name in JSON.
func (s Scheme) MarshalText() ([]byte, error) {
	if s != Standard && s != Seed {
		return nil, fmt.Errorf("%w: %d", ErrInvalidScheme, uint8(s))
	}
	return []byte(s.String()), nil
}

// UnmarshalText is the inverse of MarshalText.
func (s *Scheme) UnmarshalText(b []byte) error {
	v, err := ParseScheme(string(b))
	if err != nil {
		return err
	}
	*s = v
	return nil
}
