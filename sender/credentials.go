package sender

import "strings"

// credentialWords mark a header name whose value is a credential.
var credentialWords = []string{"auth", "token", "key", "secret", "password", "passwd", "credential", "cookie", "session", "signature"}

// CredentialHeader reports whether a header's value looks like a
// credential (Authorization, X-Api-Key, X-Auth-Token, Cookie, the
// signatures, ...): the attempts log records it redacted, and an
// endpoint's custom headers show it masked.
func CredentialHeader(name string) bool {
	name = strings.ToLower(name)
	for _, w := range credentialWords {
		if strings.Contains(name, w) {
			return true
		}
	}
	return false
}
