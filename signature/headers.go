package signature

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/textproto"
	"strings"
)

// Standard Webhooks header names, in the canonical form http.Header uses.
const (
	HeaderID        = "Webhook-Id"
	HeaderTimestamp = "Webhook-Timestamp"
	HeaderSignature = "Webhook-Signature"
)

// DefaultBrand names the seed scheme's headers unless WithBrand says otherwise.
const DefaultBrand = "Hookstream"

// ErrInvalidBrand reports a brand that cannot be part of a header name.
var ErrInvalidBrand = errors.New("signature: invalid brand")

// seedHeaders are the seed scheme's header names for one brand.
type seedHeaders struct {
	signature, timestamp, event, delivery string
}

// newSeedHeaders builds the header names once, canonicalised so that
// assigning them straight into an http.Header matches what Get looks up.
func newSeedHeaders(brand string) (seedHeaders, error) {
	if brand == "" {
		return seedHeaders{}, fmt.Errorf("%w: empty", ErrInvalidBrand)
	}
	for i := 0; i < len(brand); i++ {
		c := brand[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
			return seedHeaders{}, fmt.Errorf("%w: %q: want ASCII letters, digits and '-'", ErrInvalidBrand, brand)
		}
	}
	name := func(suffix string) string {
		return textproto.CanonicalMIMEHeaderKey("X-" + brand + "-" + suffix)
	}
	return seedHeaders{
		signature: name("Signature"),
		timestamp: name("Timestamp"),
		event:     name("Event"),
		delivery:  name("Delivery"),
	}, nil
}

// maxHeaderLine bounds one line read by ReadHeaders.
const maxHeaderLine = 1 << 20

// ReadHeaders reads a saved request's headers, one "Name: value" per line,
// for verifying a request offline (hookstream verify). It stops at the first
// blank line, so a whole saved request (headers, blank line, body) works too,
// and it skips a leading request line ("POST /hook HTTP/1.1") and HTTP/2
// pseudo-headers (":method: POST"), which request dumps contain.
// A line without a colon, or a folded (indented) line, is an error.
func ReadHeaders(r io.Reader) (http.Header, error) {
	h := make(http.Header)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), maxHeaderLine)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimRight(sc.Text(), "\r")
		if line == "" {
			if n == 1 {
				n--
				continue // tolerate leading blank lines
			}
			break
		}
		if n == 1 && isRequestLine(line) {
			continue
		}
		if line[0] == ' ' || line[0] == '\t' {
			return nil, fmt.Errorf("signature: headers line %d: folded header lines are not supported", n)
		}
		if line[0] == ':' {
			continue
		}
		name, value, ok := strings.Cut(line, ":")
		name = strings.TrimSpace(name)
		if !ok || !validFieldName(name) {
			return nil, fmt.Errorf("signature: headers line %d: want \"Name: value\"", n)
		}
		h.Add(name, strings.TrimSpace(value))
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("signature: reading headers: %w", err)
	}
	return h, nil
}

func isRequestLine(line string) bool {
	f := strings.Fields(line)
	return len(f) == 3 && strings.HasPrefix(f[2], "HTTP/")
}

// validFieldName reports whether s is an RFC 9110 token.
func validFieldName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// validFieldValue reports whether s can be sent as a header value: no
// control characters other than tab, which would split or corrupt the
// request.
func validFieldValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}
