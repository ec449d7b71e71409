package signature

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// Option configures a Signer.
type Option interface{ applySigner(*Signer) }

// VerifyOption configures Verify.
type VerifyOption interface{ applyVerify(*verifyConfig) }

// BrandOption is both an Option and a VerifyOption, so that one WithBrand
// serves the sender and the receiver.
type BrandOption struct{ brand string }

// WithBrand sets <Brand> in the seed scheme's X-<Brand>-* headers.
// Default DefaultBrand ("Hookstream"). A brand may hold ASCII letters, digits
// and '-'; anything else makes Sign and Verify return ErrInvalidBrand.
func WithBrand(brand string) BrandOption { return BrandOption{brand: brand} }

func (o BrandOption) applySigner(s *Signer)       { s.brand = o.brand }
func (o BrandOption) applyVerify(c *verifyConfig) { c.brand = o.brand }

// maxCachedKeys bounds the Signer's key cache, so secrets of deleted
// endpoints and finished rotations cannot pile up forever. When full, the
// cache starts over; keys are cheap to rebuild.
const maxCachedKeys = 16384

// Signer signs deliveries. It is safe for concurrent use and meant to be
// shared: it caches each secret's parsed key and reusable HMAC states, so
// signing an attempt costs no base64 decoding and no HMAC setup.
type Signer struct {
	brand   string
	headers seedHeaders
	err     error // invalid brand, reported by every Sign

	mu   sync.RWMutex
	keys map[string]*key
}

// NewSigner returns a Signer. Options: WithBrand.
func NewSigner(opts ...Option) *Signer {
	s := &Signer{brand: DefaultBrand, keys: make(map[string]*key)}
	for _, o := range opts {
		o.applySigner(s)
	}
	s.headers, s.err = newSeedHeaders(s.brand)
	return s
}

// Brand returns the brand in the seed scheme's header names.
func (s *Signer) Brand() string { return s.brand }

// Sign sets the signature headers of scheme on h for one delivery attempt.
//
// secrets are the endpoint's current secrets, newest first. Standard sends
// one signature per secret, so receivers holding either the old or the new
// secret accept the request while it rotates. Seed sends only the signature
// of secrets[0], the newest: the seed verifiers compare the whole header with
// a single "sha256=<hex>" (Node's timingSafeEqual even throws when lengths
// differ), so a header with two values would be rejected under every secret.
// Signing with the newest stops use of a secret that may be rotated because
// it leaked, and gives receivers one switch point, the rotation itself;
// attempts rejected until they update are retried, not lost, and a receiver
// that calls the seed verifier once per secret has no gap at all.
//
// id is the event id (webhook-id, X-<Brand>-Delivery); eventType goes into
// X-<Brand>-Event; ts is the attempt time, sent in unix seconds.
func (s *Signer) Sign(h http.Header, scheme Scheme, secrets []string, id, eventType string, ts time.Time, body []byte) error {
	if s.err != nil {
		return s.err
	}
	if len(secrets) == 0 {
		return fmt.Errorf("%w: no secrets", ErrInvalidSecret)
	}
	if id == "" {
		return errors.New("signature: empty id")
	}
	if !validFieldValue(id) || !validFieldValue(eventType) {
		return errors.New("signature: id or event type contains control characters")
	}
	switch scheme {
	case Standard:
		return s.signStandard(h, secrets, id, ts, body)
	case Seed:
		return s.signSeed(h, secrets[0], id, eventType, ts, body)
	}
	return fmt.Errorf("%w: %d", ErrInvalidScheme, uint8(scheme))
}

// Header values are built in one buffer and converted to one string, which
// the headers then share as substrings: a single allocation for all of
// them. The buffer lives on the stack unless many secrets outgrow it.
const stackBuf = 256

func (s *Signer) signStandard(h http.Header, secrets []string, id string, ts time.Time, body []byte) error {
	var arr [stackBuf]byte
	buf := strconv.AppendInt(arr[:0], ts.Unix(), 10)
	nts := len(buf)
	for i, secret := range secrets {
		k, err := s.key(secret)
		if err != nil {
			return err
		}
		m := k.std.Get().(*mac)
		sum := m.standard(id, buf[:nts], body)
		if i > 0 {
			buf = append(buf, ' ')
		}
		buf = append(buf, "v1,"...)
		buf = base64.StdEncoding.AppendEncode(buf, sum)
		k.std.Put(m)
	}
	v := string(buf)
	vals := make([]string, 3)
	vals[0], vals[1], vals[2] = id, v[:nts], v[nts:]
	h[HeaderID] = vals[0:1:1]
	h[HeaderTimestamp] = vals[1:2:2]
	h[HeaderSignature] = vals[2:3:3]
	return nil
}

func (s *Signer) signSeed(h http.Header, secret, id, eventType string, ts time.Time, body []byte) error {
	k, err := s.key(secret)
	if err != nil {
		return err
	}
	var arr [stackBuf]byte
	buf := strconv.AppendInt(arr[:0], ts.Unix(), 10)
	nts := len(buf)
	m := k.seed.Get().(*mac)
	buf = append(buf, "sha256="...)
	buf = hex.AppendEncode(buf, m.seed(body))
	k.seed.Put(m)
	v := string(buf)
	vals := make([]string, 4)
	vals[0], vals[1], vals[2], vals[3] = v[nts:], v[:nts], eventType, id
	h[s.headers.signature] = vals[0:1:1]
	h[s.headers.timestamp] = vals[1:2:2]
	h[s.headers.event] = vals[2:3:3]
	h[s.headers.delivery] = vals[3:4:4]
	return nil
}

// key returns the cached key for secret, parsing it on first use.
func (s *Signer) key(secret string) (*key, error) {
	s.mu.RLock()
	k := s.keys[secret]
	s.mu.RUnlock()
	if k != nil {
		return k, nil
	}
	raw, err := ParseSecret(secret)
	if err != nil {
		return nil, err
	}
	k = newKey(secret, raw)
	s.mu.Lock()
	if len(s.keys) >= maxCachedKeys {
		clear(s.keys)
	}
	s.keys[secret] = k
	s.mu.Unlock()
	return k, nil
}

// key holds reusable HMAC states for one secret: an HMAC is not safe for
// concurrent use, and building one allocates, so each scheme has a pool.
type key struct {
	std  sync.Pool // *mac keyed with the decoded secret (Standard)
	seed sync.Pool // *mac keyed with the secret string (Seed)
}

func newKey(secret string, raw []byte) *key {
	k := &key{}
	k.std.New = func() any { return newMAC(raw) }
	k.seed.New = func() any { return newMAC([]byte(secret)) }
	return k
}

// mac is an HMAC-SHA256 with scratch space, so computing a sum allocates
// nothing.
type mac struct {
	h       hash.Hash
	scratch []byte
	sum     [sha256.Size]byte
}

func newMAC(key []byte) *mac { return &mac{h: hmac.New(sha256.New, key)} }

// standard returns HMAC(id + "." + ts + "." + body). The result is valid
// until the next use of m.
func (m *mac) standard(id string, ts, body []byte) []byte {
	m.h.Reset()
	m.scratch = append(m.scratch[:0], id...)
	m.scratch = append(m.scratch, '.')
	m.scratch = append(m.scratch, ts...)
	m.scratch = append(m.scratch, '.')
	m.h.Write(m.scratch)
	m.h.Write(body)
	return m.h.Sum(m.sum[:0])
}

// seed returns HMAC(body). The result is valid until the next use of m.
func (m *mac) seed(body []byte) []byte {
	m.h.Reset()
	m.h.Write(body)
	return m.h.Sum(m.sum[:0])
}
