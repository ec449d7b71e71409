package subscription

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/hookstream/hookstream/schemas"
)

// Signature schemes an endpoint can be signed with.
const (
	SchemeStandard = "standard" // Standard Webhooks: webhook-id/-timestamp/-signature
	SchemeSeed     = "seed"     // X-<Brand>-Signature: sha256=<hex>
)

// Ordering modes.
const (
	OrderingStrict = "strict" // one request in flight; event n+1 waits for n
	OrderingNone   = "none"   // up to the deliverer's per-endpoint concurrency
)

// Sentinel errors of the store; check them with errors.Is.
var (
	// ErrNotFound: no such endpoint, or it belongs to another tenant.
	ErrNotFound = errors.New("subscription: endpoint not found")
	// ErrConflict: another write to the same endpoint kept it busy.
	ErrConflict = errors.New("subscription: concurrent update, retry")
	// ErrUnavailable: Kafka or Redis could not be reached; when a write
	// returns it, the change may or may not have been recorded.
	ErrUnavailable = errors.New("subscription: kafka or redis unavailable")
	// ErrInvalid is wrapped by every *FieldError.
	ErrInvalid = errors.New("subscription: invalid endpoint")
	// ErrNotCached: the write is recorded in Kafka, the store's source of
	// truth, so it is accepted and will be applied, but Redis did not
	// take it in time: reads may not show it yet. Create, Update and
	// RotateSecret return the endpoint written along with it. A caller
	// must not retry the write (a retried Create makes a second
	// endpoint).
	ErrNotCached = errors.New("subscription: recorded, not yet readable")
	// ErrBadCursor: a List cursor that is no endpoint id.
	ErrBadCursor = errors.New("subscription: cursor is no endpoint id")
)

// FieldError is a validation failure of one field, named by a JSON pointer
// into the request body ("/url", "/events/2", "/headers/X-Foo").
type FieldError struct {
	Field   string
	Message string
}

func (e *FieldError) Error() string { return "subscription: " + e.Field + ": " + e.Message }

// Unwrap makes errors.Is(err, ErrInvalid) true.
func (e *FieldError) Unwrap() error { return ErrInvalid }

// Secret is one signing secret. During a rotation the old secret keeps an
// expiry and both sign until then.
type Secret struct {
	Value     string    `json:"value"`
	ExpiresAt time.Time `json:"expires_at,omitzero"`
}

// Endpoint is one customer destination and what it subscribes to. It is
// also the value of the endpoints topic, so field names are a wire format.
type Endpoint struct {
	ID          string            `json:"id"`
	Tenant      string            `json:"tenant"`
	URL         string            `json:"url"`
	Description string            `json:"description,omitempty"`
	Events      []string          `json:"events"`
	Secrets     []Secret          `json:"secrets"` // newest first
	Signature   string            `json:"signature"`
	Ordering    string            `json:"ordering"`
	RateLimit   int               `json:"rate_limit,omitempty"` // requests per second; 0 = unlimited
	Headers     map[string]string `json:"headers,omitempty"`
	// Timeout overrides the deliverer's total request timeout when > 0.
	Timeout        time.Duration `json:"timeout,omitempty"`
	Disabled       bool          `json:"disabled"`
	DisabledReason string        `json:"disabled_reason,omitempty"`
	// Version counts the writes to this endpoint, starting at 1.
	Version   int64     `json:"version"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// ActiveSecrets returns the secrets that sign at now, newest first.
func (e *Endpoint) ActiveSecrets(now time.Time) []string {
	out := make([]string, 0, len(e.Secrets))
	for _, s := range e.Secrets {
		if s.ExpiresAt.IsZero() || now.Before(s.ExpiresAt) {
			out = append(out, s.Value)
		}
	}
	return out
}

// Matches reports whether the endpoint subscribes to eventType.
func (e *Endpoint) Matches(eventType string) bool {
	for _, f := range e.Events {
		if schemas.MatchFilter(f, eventType) {
			return true
		}
	}
	return false
}

func (e *Endpoint) clone() *Endpoint {
	c := *e
	c.Events = slices.Clone(e.Events)
	c.Secrets = slices.Clone(e.Secrets)
	c.Headers = maps.Clone(e.Headers)
	return &c
}

// EndpointInput is what a client sends to create an endpoint. Empty
// Signature and Ordering mean the defaults (standard, strict); an empty
// Secret means a fresh one is generated.
type EndpointInput struct {
	URL         string            `json:"url"`
	Events      []string          `json:"events"`
	Description string            `json:"description,omitempty"`
	Secret      string            `json:"secret,omitempty"`
	Signature   string            `json:"signature,omitempty"`
	Ordering    string            `json:"ordering,omitempty"`
	RateLimit   int               `json:"rate_limit,omitempty"`
	Headers     map[string]string `json:"headers,omitempty"`
	// Timeout overrides the deliverer's total request timeout; 0 keeps it.
	Timeout time.Duration `json:"timeout,omitempty"`
}

// Patch is a partial update: nil fields stay as they are. A non-nil empty
// Headers map removes every custom header. Disabled false re-enables an
// endpoint the deliverer disabled.
type Patch struct {
	URL         *string           `json:"url,omitempty"`
	Events      []string          `json:"events,omitempty"`
	Description *string           `json:"description,omitempty"`
	Signature   *string           `json:"signature,omitempty"`
	Ordering    *string           `json:"ordering,omitempty"`
	RateLimit   *int              `json:"rate_limit,omitempty"`
	Headers     map[string]string `json:"headers,omitempty"`
	Disabled    *bool             `json:"disabled,omitempty"`
	Timeout     *time.Duration    `json:"timeout,omitempty"`
}

func (p *Patch) apply(e *Endpoint) {
	if p.URL != nil {
		e.URL = *p.URL
	}
	if p.Events != nil {
		e.Events = slices.Clone(p.Events)
	}
	if p.Description != nil {
		e.Description = *p.Description
	}
	if p.Signature != nil {
		e.Signature = *p.Signature
	}
	if p.Ordering != nil {
		e.Ordering = *p.Ordering
	}
	if p.RateLimit != nil {
		e.RateLimit = *p.RateLimit
	}
	if p.Timeout != nil {
		e.Timeout = *p.Timeout
	}
	if p.Headers != nil {
		h := maps.Clone(p.Headers)
		unmask(e.Headers, h)
		e.Headers = h
		if len(e.Headers) == 0 {
			e.Headers = nil
		}
	}
	if p.Disabled != nil && *p.Disabled != e.Disabled {
		e.Disabled = *p.Disabled
		e.DisabledReason = ""
		if e.Disabled {
			e.DisabledReason = "disabled through the API"
		}
	}
}

// IDPrefix starts every endpoint id.
const IDPrefix = "ep_"

// isID tells whether s has the form of an endpoint id.
func isID(s string) bool {
	h, ok := strings.CutPrefix(s, IDPrefix)
	if !ok || len(h) != 24 {
		return false
	}
	_, err := hex.DecodeString(h)
	return err == nil
}

// newID returns "ep_" + 24 hex digits: 48 bits of milliseconds since the
// epoch, then 48 random bits. The time prefix makes ids sort by creation,
// so listing in id order (Redis ZRANGEBYLEX) lists oldest first and a
// cursor is simply the last id seen.
func newID(now time.Time) string {
	var b [12]byte
	binary.BigEndian.PutUint64(b[:8], uint64(now.UnixMilli())<<16)
	_, _ = rand.Read(b[6:]) // crypto/rand.Read never fails (Go 1.24+)
	return IDPrefix + hex.EncodeToString(b[:])
}
