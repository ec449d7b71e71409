package signature

import (
	"crypto/hmac"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// DefaultTolerance is how far a timestamp may be from the receiver's clock,
// either way, unless WithTolerance says otherwise.
const DefaultTolerance = 5 * time.Minute

// Errors returned by Verify; check them with errors.Is.
var (
	// ErrMissingHeaders: no signature headers of either scheme, or one of
	// the scheme's headers missing or malformed (e.g. a timestamp that is
	// not unix seconds).
	ErrMissingHeaders = errors.New("signature: missing or malformed signature headers")
	// ErrInvalidSignature: no signature in the headers matches any secret.
	ErrInvalidSignature = errors.New("signature: no matching signature")
	// ErrTimestampOutOfRange: the signature matches but the timestamp is
	// further than the tolerance from now, in the past (a replay) or in the
	// future.
	ErrTimestampOutOfRange = errors.New("signature: timestamp out of range")
)

type verifyConfig struct {
	brand     string
	tolerance time.Duration
	now       func() time.Time
}

type verifyOption func(*verifyConfig)

func (f verifyOption) applyVerify(c *verifyConfig) { f(c) }

// WithTolerance sets how far the timestamp may be from now, either way,
// counted in whole seconds. Default DefaultTolerance (5 minutes); a negative
// d counts as 0.
func WithTolerance(d time.Duration) VerifyOption {
	return verifyOption(func(c *verifyConfig) { c.tolerance = max(d, 0) })
}

// WithNow sets the clock the timestamp is checked against. Default (and
// for nil) time.Now. Useful in tests and for checking a saved request as of
// when it arrived.
func WithNow(now func() time.Time) VerifyOption {
	return verifyOption(func(c *verifyConfig) {
		if now != nil {
			c.now = now
		}
	})
}

// Verify checks a received webhook: h are its headers, body its exact bytes,
// secrets the endpoint's secrets (any may match, so a receiver keeps the old
// secret next to the new one while it rotates). The scheme follows from the
// headers: webhook-signature means Standard Webhooks, X-<Brand>-Signature
// the seed scheme (brand from WithBrand, default "Hookstream").
//
// The signature is checked before the timestamp, so an authentic but stale
// request reports ErrTimestampOutOfRange (a replay or a wrong clock) rather
// than looking like a wrong secret. In the seed scheme the signature covers
// only the body, not X-<Brand>-Timestamp, so there the timestamp check
// catches unaltered replays only; Standard Webhooks signs the timestamp.
//
// Errors: ErrMissingHeaders, ErrInvalidSignature, ErrTimestampOutOfRange,
// ErrInvalidSecret (a secret that does not parse, or none), ErrInvalidBrand.
func Verify(h http.Header, body []byte, secrets []string, opts ...VerifyOption) error {
	cfg := verifyConfig{brand: DefaultBrand, tolerance: DefaultTolerance, now: time.Now}
	for _, o := range opts {
		o.applyVerify(&cfg)
	}
	names, err := newSeedHeaders(cfg.brand)
	if err != nil {
		return err
	}
	if len(secrets) == 0 {
		return fmt.Errorf("%w: no secrets", ErrInvalidSecret)
	}
	keys := make([][]byte, len(secrets))
	for i, s := range secrets {
		if keys[i], err = ParseSecret(s); err != nil {
			return err
		}
	}

	var ts string
	switch {
	case present(h, HeaderSignature):
		ts, err = verifyStandard(h, body, keys)
	case present(h, names.signature):
		ts, err = verifySeed(h, names, body, secrets)
	default:
		return fmt.Errorf("%w: neither %s nor %s present", ErrMissingHeaders, HeaderSignature, names.signature)
	}
	if err != nil {
		return err
	}
	return checkTimestamp(ts, cfg)
}

// present reports whether h has a non-blank value for name.
func present(h http.Header, name string) bool {
	for _, v := range h.Values(name) {
		if strings.TrimSpace(v) != "" {
			return true
		}
	}
	return false
}

// verifyStandard returns the timestamp header once a signature matches.
func verifyStandard(h http.Header, body []byte, keys [][]byte) (string, error) {
	id, ts := h.Get(HeaderID), h.Get(HeaderTimestamp)
	if id == "" || ts == "" {
		return "", fmt.Errorf("%w: %s and %s are required", ErrMissingHeaders, HeaderID, HeaderTimestamp)
	}
	var sigs [][]byte
	for _, v := range h.Values(HeaderSignature) {
		for _, tok := range strings.Fields(v) {
			enc, ok := strings.CutPrefix(tok, "v1,")
			if !ok {
				continue // other versions (e.g. v1a, asymmetric) are not ours
			}
			if sig, err := base64.StdEncoding.DecodeString(enc); err == nil {
				sigs = append(sigs, sig)
			}
		}
	}
	for _, k := range keys {
		want := newMAC(k).standard(id, []byte(ts), body)
		for _, sig := range sigs {
			if hmac.Equal(sig, want) {
				return ts, nil
			}
		}
	}
	return "", ErrInvalidSignature
}

// verifySeed returns the timestamp header once a signature matches.
func verifySeed(h http.Header, names seedHeaders, body []byte, secrets []string) (string, error) {
	ts := h.Get(names.timestamp)
	if ts == "" {
		return "", fmt.Errorf("%w: %s is required", ErrMissingHeaders, names.timestamp)
	}
	var sigs [][]byte
	for _, v := range h.Values(names.signature) {
		for _, tok := range strings.Fields(v) {
			enc, ok := strings.CutPrefix(tok, "sha256=")
			if !ok {
				continue
			}
			if sig, err := hex.DecodeString(enc); err == nil {
				sigs = append(sigs, sig)
			}
		}
	}
	for _, s := range secrets {
		want := newMAC([]byte(s)).seed(body)
		for _, sig := range sigs {
			if hmac.Equal(sig, want) {
				return ts, nil
			}
		}
	}
	return "", ErrInvalidSignature
}

func checkTimestamp(ts string, cfg verifyConfig) error {
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: timestamp %q is not unix seconds", ErrMissingHeaders, ts)
	}
	// Whole seconds on both sides, as the sender truncates its clock too.
	// Neither sum can overflow: |now| and the largest Duration in seconds
	// are both far below the int64 range.
	now, tol := cfg.now().Unix(), int64(cfg.tolerance/time.Second)
	if sec < now-tol || sec > now+tol {
		return fmt.Errorf("%w: timestamp %d, now %d, tolerance %ds", ErrTimestampOutOfRange, sec, now, tol)
	}
	return nil
}
