// Package subscription provides customer endpoints (subscriptions): the model,
// its validation, and the store that keeps them in a compacted Kafka topic
// (the source of truth) with Redis as the cache and matching index.
package subscription

import (
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

// Secret is one signing secret. During a rotation the old secret keeps an
// expiry and both sign until then.
type Secret struct {
	Value     string    `json:"value"`
	ExpiresAt time.Time `json:"expires_at,omitzero"`
}

// Endpoint is one customer destination and what it subscribes to.
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
	Version        int64         `json:"version"`
	CreatedAt      time.Time     `json:"created_at"`
	UpdatedAt      time.Time     `json:"updated_at"`
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
