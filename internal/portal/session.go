package portal

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/segmentio/encoding/json"

	"github.com/hookstream/hookstream/internal/api"
)

// Capability is what a portal session may do. View is always granted.
type Capability string

// The capabilities a link may grant.
const (
	View            Capability = "view"
	ManageEndpoints Capability = "manage_endpoints"
	ViewSecrets     Capability = "view_secrets"
	Recover         Capability = "recover"
)

// Capabilities lists every capability, as api.PortalCapabilities does.
var Capabilities = []Capability{View, ManageEndpoints, ViewSecrets, Recover}

// Bounds and default of a link's lifetime (the API checks them).
const (
	MinExpiry     = api.PortalMinExpiry
	MaxExpiry     = api.PortalMaxExpiry
	DefaultExpiry = api.PortalDefaultExpiry
)

// MinKeyLength is the shortest signing key accepted, in bytes.
const MinKeyLength = 16

// Errors of Exchange and Check. Each one ends the same way for the
// visitor (the sign-in-expired page), but tests and logs tell them apart.
var (
	ErrInvalid  = errors.New("portal: invalid token")
	ErrExpired  = errors.New("portal: token expired")
	ErrRevoked  = errors.New("portal: sessions revoked")
	ErrUsed     = errors.New("portal: link already used")
	ErrShortKey = fmt.Errorf("portal: the signing key must be at least %d bytes", MinKeyLength)
)

// UnknownCapabilityError names the capability at Index that is not one of
// Capabilities.
type UnknownCapabilityError struct {
	Index int
	Name  string
}

func (e *UnknownCapabilityError) Error() string {
	return fmt.Sprintf("portal: unknown capability %q", e.Name)
}

// ParseCapabilities checks names and returns them with View added, without
// repeats.
func ParseCapabilities(names []string) ([]Capability, error) {
	out := []Capability{View}
	for i, n := range names {
		c := Capability(n)
		if !slices.Contains(Capabilities, c) {
			return nil, &UnknownCapabilityError{Index: i, Name: n}
		}
		if !slices.Contains(out, c) {
			out = append(out, c)
		}
	}
	return out, nil
}

// Sessions issues signed portal links, exchanges them once for session
// cookies and checks those cookies. Tokens are HMAC-signed and carry
// their tenant, capabilities and expiry; Redis holds only what a
// signature cannot: which links were used, and each tenant's generation,
// which Revoke increments to end every link and session issued before.
type Sessions struct {
	key []byte
	rdb redis.UniversalClient
	now func() time.Time
}

// NewSessions returns Sessions signing with key over rdb.
func NewSessions(key []byte, rdb redis.UniversalClient) (*Sessions, error) {
	if len(key) < MinKeyLength {
		return nil, ErrShortKey
	}
	return &Sessions{key: key, rdb: rdb, now: time.Now}, nil
}

// Session is a signed-in visitor: one tenant, some capabilities.
type Session struct {
	Tenant       string       `json:"t"`
	Capabilities []Capability `json:"c"`
	ExpiresAt    int64        `json:"x"` // unix seconds
	Generation   int64        `json:"g"`
	// ID is random: the link's nonce, which makes it one-time, and the
	// session's, to which its CSRF token is bound.
	ID string `json:"n"`
}

// Can reports whether the session has c.
func (s *Session) Can(c Capability) bool { return slices.Contains(s.Capabilities, c) }

// Expires is when the session ends.
func (s *Session) Expires() time.Time { return time.Unix(s.ExpiresAt, 0) }

// Token kinds: a link cannot be used as a cookie or the other way round,
// since the kind is part of what is signed.
const (
	kindLink    = "link"
	kindSession = "session"
	kindCSRF    = "csrf"
)

func genKey(tenant string) string { return "portal:{" + tenant + "}:gen" }
func usedKey(tenant, nonce string) string {
	return "portal:{" + tenant + "}:used:" + nonce
}

// Issue signs a link token for tenant with caps (View is added), valid
// for ttl.
func (s *Sessions) Issue(ctx context.Context, tenant string, names []string, ttl time.Duration) (token string, expires time.Time, err error) {
	caps, err := ParseCapabilities(names)
	if err != nil {
		return "", time.Time{}, err
	}
	gen, err := s.generation(ctx, tenant)
	if err != nil {
		return "", time.Time{}, err
	}
	var n [16]byte
	if _, err := rand.Read(n[:]); err != nil {
		return "", time.Time{}, fmt.Errorf("portal: nonce: %w", err)
	}
	expires = s.now().Add(ttl).Truncate(time.Second)
	sess := Session{Tenant: tenant, Capabilities: caps, ExpiresAt: expires.Unix(), Generation: gen, ID: hex.EncodeToString(n[:])}
	return s.sign(kindLink, &sess), expires, nil
}

// Revoke ends every link and session of tenant issued so far.
func (s *Sessions) Revoke(ctx context.Context, tenant string) error {
	if err := s.rdb.Incr(ctx, genKey(tenant)).Err(); err != nil {
		return fmt.Errorf("portal: revoke: %w", err)
	}
	return nil
}

// Exchange checks a link token and uses it up: a second exchange of the
// same link fails with ErrUsed. It returns the session cookie's value.
func (s *Sessions) Exchange(ctx context.Context, token string) (*Session, string, error) {
	sess, err := s.verify(ctx, kindLink, token)
	if err != nil {
		return nil, "", err
	}
	ok, err := s.rdb.SetNX(ctx, usedKey(sess.Tenant, sess.ID), 1, time.Until(sess.Expires())+time.Minute).Result()
	if err != nil {
		return nil, "", fmt.Errorf("portal: exchange: %w", err)
	}
	if !ok {
		return nil, "", ErrUsed
	}
	return sess, s.sign(kindSession, sess), nil
}

// Check returns the session of a cookie value.
func (s *Sessions) Check(ctx context.Context, cookie string) (*Session, error) {
	return s.verify(ctx, kindSession, cookie)
}

// CSRF is the token a session's forms carry: an HMAC of its id, so it
// needs no storage and is worthless with any other session.
func (s *Sessions) CSRF(sess *Session) string {
	return base64.RawURLEncoding.EncodeToString(s.mac(kindCSRF, []byte(sess.ID)))
}

// ValidCSRF reports whether tok is sess's CSRF token.
func (s *Sessions) ValidCSRF(sess *Session, tok string) bool {
	got, err := base64.RawURLEncoding.DecodeString(tok)
	return err == nil && hmac.Equal(got, s.mac(kindCSRF, []byte(sess.ID)))
}

func (s *Sessions) generation(ctx context.Context, tenant string) (int64, error) {
	gen, err := s.rdb.Get(ctx, genKey(tenant)).Int64()
	if errors.Is(err, redis.Nil) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("portal: generation: %w", err)
	}
	return gen, nil
}

func (s *Sessions) mac(kind string, payload []byte) []byte {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte(kind))
	m.Write([]byte{0})
	m.Write(payload)
	return m.Sum(nil)
}

func (s *Sessions) sign(kind string, sess *Session) string {
	payload, _ := json.Marshal(sess) // strings and numbers only: cannot fail
	enc := base64.RawURLEncoding
	return enc.EncodeToString(payload) + "." + enc.EncodeToString(s.mac(kind, payload))
}

func (s *Sessions) verify(ctx context.Context, kind, token string) (*Session, error) {
	enc := base64.RawURLEncoding
	p, m, ok := strings.Cut(token, ".")
	payload, err1 := enc.DecodeString(p)
	sig, err2 := enc.DecodeString(m)
	if !ok || err1 != nil || err2 != nil || !hmac.Equal(sig, s.mac(kind, payload)) {
		return nil, ErrInvalid
	}
	var sess Session
	if err := json.Unmarshal(payload, &sess); err != nil || sess.Tenant == "" || sess.ID == "" {
		return nil, ErrInvalid
	}
	if !s.now().Before(sess.Expires()) {
		return nil, ErrExpired
	}
	gen, err := s.generation(ctx, sess.Tenant)
	if err != nil {
		return nil, err
	}
	if sess.Generation != gen {
		return nil, ErrRevoked
	}
	return &sess, nil
}
