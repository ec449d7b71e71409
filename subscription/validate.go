package subscription

import (
	"context"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"net/textproto"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/net/http/httpguts"
	"golang.org/x/net/idna"

	"github.com/hookstream/hookstream/envelope"
	"github.com/hookstream/hookstream/internal/jsonptr"
	"github.com/hookstream/hookstream/internal/netguard"
	"github.com/hookstream/hookstream/sender"
	"github.com/hookstream/hookstream/signature"
)

// Limits on what an endpoint may hold.
const (
	MaxDescription = 1024 // characters
	MaxURL         = 2048 // bytes
	MaxFilters     = 100
	MaxHeaders     = 32
	MaxHeaderValue = 4096 // bytes
	MaxTenant      = 256  // bytes
	// MaxTimeout bounds an endpoint's request timeout: a receiver that
	// needs longer should answer 2xx first and work after.
	MaxTimeout = time.Minute
)

// Filters tells which event filters select a known type; *schemas.Catalog
// is one.
type Filters interface {
	ValidFilter(filter string) bool
}

// validator checks an endpoint before it is written.
type validator struct {
	filters      Filters
	allowPrivate bool
	// brand is the seed scheme's, whose signature headers are reserved.
	brand    string
	resolver *net.Resolver
	// lookupTimeout bounds the DNS lookup of a URL's host.
	lookupTimeout time.Duration
}

// endpoint checks e (defaults already applied), cheapest first, so a bad
// filter never costs a DNS lookup. It returns a *FieldError.
//
// When old is not nil, e is old changed, and only the fields that differ
// from old are checked: what was accepted once stays writable. Otherwise an
// endpoint whose host came to resolve to a private address, or that was
// created while private destinations were allowed, or whose filter names a
// type since dropped from the catalog, could no longer be disabled by the
// deliverer, have its secret rotated, or its description changed.
func (v *validator) endpoint(ctx context.Context, old, e *Endpoint) error {
	fresh := old == nil
	if e.Tenant == "" || len(e.Tenant) > MaxTenant {
		return &FieldError{"/tenant", fmt.Sprintf("tenant must be 1 to %d bytes", MaxTenant)}
	}
	if fresh && !envelope.ValidID(e.Tenant) {
		// Events are published only for such tenants (the producer's
		// rule): an endpoint of another could never receive one.
		return &FieldError{"/tenant", "tenant must be 1-128 characters of [A-Za-z0-9_.:-], as events' tenants are"}
	}
	if err := validUTF8(old, e); err != nil {
		return err
	}
	if fresh || !slices.Equal(old.Events, e.Events) {
		if err := v.events(e.Events); err != nil {
			return err
		}
	}
	if (fresh || old.Signature != e.Signature) && e.Signature != SchemeStandard && e.Signature != SchemeSeed {
		return &FieldError{"/signature", fmt.Sprintf("must be %q or %q, not %q", SchemeStandard, SchemeSeed, e.Signature)}
	}
	if (fresh || old.Ordering != e.Ordering) && e.Ordering != OrderingStrict && e.Ordering != OrderingNone {
		return &FieldError{"/ordering", fmt.Sprintf("must be %q or %q, not %q", OrderingStrict, OrderingNone, e.Ordering)}
	}
	if (fresh || old.RateLimit != e.RateLimit) && e.RateLimit < 0 {
		return &FieldError{"/rate_limit", "must be 0 (unlimited) or more requests per second"}
	}
	if (fresh || old.Timeout != e.Timeout) && e.Timeout != 0 && (e.Timeout < time.Second || e.Timeout > MaxTimeout) {
		return &FieldError{"/timeout", fmt.Sprintf("must be 0 (the deliverer's) or from 1s to %s, not %s", MaxTimeout, e.Timeout)}
	}
	if fresh || old.Description != e.Description {
		if n := utf8.RuneCountInString(e.Description); n > MaxDescription {
			return &FieldError{"/description", fmt.Sprintf("is %d characters, at most %d allowed", n, MaxDescription)}
		}
	}
	if fresh || !maps.Equal(old.Headers, e.Headers) {
		if err := v.headers(e.Headers); err != nil {
			return err
		}
	}
	if fresh || old.URL != e.URL {
		return v.url(ctx, e.URL)
	}
	return nil
}

// validUTF8 checks the free-text fields that changed: JSON carries only
// valid UTF-8, and what is stored is read back as JSON.
func validUTF8(old, e *Endpoint) error {
	fresh := old == nil
	if (fresh || old.URL != e.URL) && !utf8.ValidString(e.URL) {
		return &FieldError{"/url", "is not valid UTF-8"}
	}
	if (fresh || old.Description != e.Description) && !utf8.ValidString(e.Description) {
		return &FieldError{"/description", "is not valid UTF-8"}
	}
	for i, f := range e.Events {
		if !utf8.ValidString(f) {
			return &FieldError{"/events/" + strconv.Itoa(i), "is not valid UTF-8"}
		}
	}
	for name, value := range e.Headers {
		if !utf8.ValidString(name) || !utf8.ValidString(value) {
			return &FieldError{"/headers" + jsonptr.Token(strings.ToValidUTF8(name, "\ufffd")), "is not valid UTF-8"}
		}
	}
	return nil
}

func (v *validator) events(events []string) error {
	if len(events) == 0 {
		return &FieldError{"/events", `must list at least one event type filter, such as "agent.created", "agent.*" or "*"`}
	}
	if len(events) > MaxFilters {
		return &FieldError{"/events", fmt.Sprintf("has %d filters, at most %d allowed", len(events), MaxFilters)}
	}
	for i, f := range events {
		if !v.filters.ValidFilter(f) {
			return &FieldError{"/events/" + strconv.Itoa(i), fmt.Sprintf("%q selects no known event type (see GET /v1/event-types)", f)}
		}
	}
	return nil
}

// checkSecret checks a secret the client supplied.
func checkSecret(s string) error {
	if _, err := signature.ParseSecret(s); err != nil {
		return &FieldError{"/secret", fmt.Sprintf("must be %q followed by the base64 of %d to %d random bytes",
			signature.SecretPrefix, signature.MinSecretBytes, signature.MaxSecretBytes)}
	}
	return nil
}

// headers checks custom headers. Names are compared canonically, so that
// two spellings of one name never leave the receiver with either value.
func (v *validator) headers(h map[string]string) error {
	if len(h) > MaxHeaders {
		return &FieldError{"/headers", fmt.Sprintf("has %d headers, at most %d allowed", len(h), MaxHeaders)}
	}
	seen := make(map[string]string, len(h))
	for _, name := range slices.Sorted(maps.Keys(h)) {
		value := h[name]
		field := "/headers" + jsonptr.Token(name)
		if !httpguts.ValidHeaderFieldName(name) {
			return &FieldError{field, fmt.Sprintf("%q is not a valid header name", name)}
		}
		canon := textproto.CanonicalMIMEHeaderKey(name)
		if other, ok := seen[canon]; ok {
			return &FieldError{field, fmt.Sprintf("%q and %q are the same header name", other, name)}
		}
		seen[canon] = name
		if sender.ReservedHeader(v.brand, canon) {
			return &FieldError{field, fmt.Sprintf("%s is set by Hookstream or the HTTP connection and cannot be overridden", canon)}
		}
		if len(value) > MaxHeaderValue || !httpguts.ValidHeaderFieldValue(value) {
			return &FieldError{field, fmt.Sprintf("value must be at most %d bytes without control characters", MaxHeaderValue)}
		}
	}
	return nil
}

// url checks that raw is an absolute http(s) URL with a host and no
// credentials and, unless private destinations are allowed, that its host
// neither is nor resolves to an address netguard refuses. A host that does
// not resolve now is accepted: DNS may not be set up yet, and the deliverer
// checks the address it dials anyway.
func (v *validator) url(ctx context.Context, raw string) error {
	const field = "/url"
	if raw == "" {
		return &FieldError{field, "is required"}
	}
	if len(raw) > MaxURL {
		return &FieldError{field, fmt.Sprintf("is longer than %d bytes", MaxURL)}
	}
	u, err := url.Parse(raw)
	if err != nil {
		return &FieldError{field, "is not a valid URL"}
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return &FieldError{field, "must be an absolute http:// or https:// URL"}
	}
	if u.User != nil {
		return &FieldError{field, "must not contain a user name or password; use headers for credentials"}
	}
	host, err := dialHost(u.Hostname())
	if err != nil {
		return &FieldError{field, fmt.Sprintf("host %q is not a valid host name: %v", u.Hostname(), err)}
	}
	if host == "" {
		return &FieldError{field, "must name a host"}
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return &FieldError{field, fmt.Sprintf("port %q is not 1 to 65535", p)}
		}
	}
	ip, err := netip.ParseAddr(host)
	if err != nil && numericName(host) {
		// "2130706433" or "0x7f.1": some resolvers read these as IP
		// addresses; no real host name ends in a numeric label.
		return &FieldError{field, fmt.Sprintf("host %q is neither a valid IP address nor a host name", host)}
	}
	if v.allowPrivate {
		return nil
	}
	if err == nil {
		if !netguard.Allowed(ip) {
			return &FieldError{field, fmt.Sprintf("host %s is a private, loopback, link-local or otherwise internal address", ip)}
		}
		return nil
	}
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		// RFC 6761: always loopback, whatever DNS says.
		return &FieldError{field, fmt.Sprintf("host %q is a loopback name", host)}
	}
	lctx, cancel := context.WithTimeout(ctx, v.lookupTimeout)
	defer cancel()
	addrs, err := v.resolver.LookupNetIP(lctx, "ip", host)
	if err != nil {
		return nil
	}
	for _, a := range addrs {
		if !netguard.Allowed(a) {
			return &FieldError{field, fmt.Sprintf("host %q resolves to %s, a private, loopback, link-local or otherwise internal address", host, a.Unmap())}
		}
	}
	return nil
}

// dialHost is host as the HTTP client will dial it: a non-ASCII name
// mapped by IDNA (as net/http does, so full-width "１２７.０.０.１" is
// 127.0.0.1), lower case, without the trailing dot that names the same
// host. Every check runs on it, never on the host as written.
func dialHost(host string) (string, error) {
	if !isASCII(host) {
		a, err := idna.Lookup.ToASCII(host)
		if err != nil {
			return "", err
		}
		host = a
	}
	return strings.TrimSuffix(strings.ToLower(host), "."), nil
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// numericName reports whether the last label of host is all digits or a
// 0x hex number.
func numericName(host string) bool {
	host = strings.TrimSuffix(host, ".")
	last := host[strings.LastIndexByte(host, '.')+1:]
	if last == "" {
		return false
	}
	if h, ok := strings.CutPrefix(strings.ToLower(last), "0x"); ok {
		last = h
		if last == "" {
			return true
		}
		for _, c := range last {
			if !strings.ContainsRune("0123456789abcdef", c) {
				return false
			}
		}
		return true
	}
	for _, c := range last {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}
