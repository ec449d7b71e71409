package subscription

import (
	"maps"
	"strings"

	"github.com/hookstream/hookstream/sender"
)

// MaskedValue stands in for a credential-like custom header's value when an
// endpoint is read back, as the secret is left out. Sending it back in an
// update keeps the stored value, so a read-modify-write never stores it.
const MaskedValue = "********"

// CredentialHeader reports whether a custom header's value looks like a
// credential (Authorization, X-Api-Key, X-Auth-Token, Cookie, ...).
func CredentialHeader(name string) bool { return sender.CredentialHeader(name) }

// MaskedHeaders is h with credential-like values replaced by MaskedValue.
func MaskedHeaders(h map[string]string) map[string]string {
	if h == nil {
		return nil
	}
	out := maps.Clone(h)
	for name := range out {
		if CredentialHeader(name) {
			out[name] = MaskedValue
		}
	}
	return out
}

// unmask keeps old's value for every header of h that is MaskedValue and
// that old holds under the same canonical name.
func unmask(old, h map[string]string) {
	for name, v := range h {
		if v != MaskedValue {
			continue
		}
		for oldName, oldV := range old {
			if strings.EqualFold(oldName, name) {
				h[name] = oldV
			}
		}
	}
}
