package signature_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hookstream/hookstream/signature"
)

// The test vector published with the Standard Webhooks specification.
const (
	specSecret  = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	specID      = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	specTS      = 1614265330
	specPayload = `{"test": 2432232314}`
	specSig     = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
)

func at(sec int64) func() time.Time { return func() time.Time { return time.Unix(sec, 0) } }

func newSecret(t testing.TB) string {
	t.Helper()
	s, err := signature.NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func sign(t testing.TB, s *signature.Signer, scheme signature.Scheme, secrets []string, id string, ts int64, body []byte) http.Header {
	t.Helper()
	h := make(http.Header)
	if err := s.Sign(h, scheme, secrets, id, "agent.created", time.Unix(ts, 0), body); err != nil {
		t.Fatalf("Sign: %v", err)
	}
	return h
}

func TestSpecVector(t *testing.T) {
	h := sign(t, signature.NewSigner(), signature.Standard, []string{specSecret}, specID, specTS, []byte(specPayload))
	want := map[string]string{
		"webhook-id":        specID,
		"webhook-timestamp": strconv.Itoa(specTS),
		"webhook-signature": specSig,
	}
	for name, v := range want {
		if got := h.Get(name); got != v {
			t.Errorf("%s = %q, want %q", name, got, v)
		}
	}
	if len(h) != len(want) {
		t.Errorf("Sign set %d headers, want %d: %v", len(h), len(want), h)
	}

	// Verify against headers built by hand, independent of the Signer.
	spec := http.Header{}
	spec.Set("webhook-id", specID)
	spec.Set("webhook-timestamp", strconv.Itoa(specTS))
	spec.Set("webhook-signature", specSig)
	if err := signature.Verify(spec, []byte(specPayload), []string{specSecret}, signature.WithNow(at(specTS))); err != nil {
		t.Fatalf("Verify(spec vector) = %v", err)
	}
}

func TestNewSecret(t *testing.T) {
	a, b := newSecret(t), newSecret(t)
	if a == b {
		t.Fatal("two NewSecret calls returned the same secret")
	}
	if !strings.HasPrefix(a, "whsec_") {
		t.Fatalf("secret %q lacks whsec_ prefix", a)
	}
	key, err := signature.ParseSecret(a)
	if err != nil {
		t.Fatal(err)
	}
	if len(key) != 32 {
		t.Fatalf("key is %d bytes, want 32", len(key))
	}
}

func TestParseSecret(t *testing.T) {
	b64 := func(n int) string { return base64.StdEncoding.EncodeToString(make([]byte, n)) }
	tests := []struct {
		name    string
		secret  string
		wantLen int // 0: want ErrInvalidSecret
	}{
		{"spec vector", specSecret, 24},
		{"64 bytes", "whsec_" + b64(64), 64},
		{"empty", "", 0},
		{"prefix only", "whsec_", 0},
		{"no prefix", b64(32), 0},
		{"wrong prefix", "whsex_" + b64(32), 0},
		{"not base64", "whsec_!!!!" + b64(30), 0},
		{"unpadded base64", "whsec_" + base64.RawStdEncoding.EncodeToString(make([]byte, 32)), 0},
		{"url base64", "whsec_" + base64.URLEncoding.EncodeToString([]byte(strings.Repeat("\xff", 30))), 0},
		{"too short", "whsec_" + b64(23), 0},
		{"too long", "whsec_" + b64(65), 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key, err := signature.ParseSecret(tt.secret)
			if tt.wantLen == 0 {
				if !errors.Is(err, signature.ErrInvalidSecret) {
					t.Fatalf("err = %v, want ErrInvalidSecret", err)
				}
				if body := strings.TrimPrefix(tt.secret, "whsec_"); len(body) > 8 && strings.Contains(err.Error(), body) {
					t.Fatalf("error %q leaks the secret", err)
				}
				return
			}
			if err != nil || len(key) != tt.wantLen {
				t.Fatalf("ParseSecret = %d bytes, %v; want %d bytes", len(key), err, tt.wantLen)
			}
		})
	}
}

func TestParseScheme(t *testing.T) {
	tests := []struct {
		name    string
		want    signature.Scheme
		wantErr bool
	}{
		{"standard", signature.Standard, false},
		{"seed", signature.Seed, false},
		{"", 0, true},
		{"Standard", 0, true},
		{"hmac", 0, true},
	}
	for _, tt := range tests {
		got, err := signature.ParseScheme(tt.name)
		if tt.wantErr {
			if !errors.Is(err, signature.ErrInvalidScheme) {
				t.Errorf("ParseScheme(%q) err = %v, want ErrInvalidScheme", tt.name, err)
			}
			var s signature.Scheme
			if err := s.UnmarshalText([]byte(tt.name)); !errors.Is(err, signature.ErrInvalidScheme) {
				t.Errorf("UnmarshalText(%q) err = %v, want ErrInvalidScheme", tt.name, err)
			}
			continue
		}
		if err != nil || got != tt.want || got.String() != tt.name {
			t.Errorf("ParseScheme(%q) = %v, %v", tt.name, got, err)
		}
		text, err := got.MarshalText()
		var back signature.Scheme = 99
		if err != nil || back.UnmarshalText(text) != nil || back != got {
			t.Errorf("text round trip of %v: %q, %v -> %v", got, text, err, back)
		}
	}
	if _, err := signature.Scheme(7).MarshalText(); !errors.Is(err, signature.ErrInvalidScheme) {
		t.Errorf("MarshalText(7) err = %v, want ErrInvalidScheme", err)
	}
	if signature.Scheme(0) != signature.Standard {
		t.Error("the zero Scheme must be the default, Standard")
	}
}

func TestRotation(t *testing.T) {
	newest, old, other := newSecret(t), newSecret(t), newSecret(t)
	body := []byte(`{"id":"evt_1","event":"agent.created","timestamp":"2026-03-04T12:00:00+00:00","data":{}}`)
	const ts = 1_700_000_000
	s := signature.NewSigner()
	now := signature.WithNow(at(ts))

	t.Run("standard sends one signature per secret", func(t *testing.T) {
		h := sign(t, s, signature.Standard, []string{newest, old}, "evt_1", ts, body)
		sigs := strings.Fields(h.Get("webhook-signature"))
		if len(sigs) != 2 {
			t.Fatalf("webhook-signature %q: want 2 signatures", h.Get("webhook-signature"))
		}
		for i, secret := range []string{newest, old} {
			one := sign(t, s, signature.Standard, []string{secret}, "evt_1", ts, body)
			if sigs[i] != one.Get("webhook-signature") {
				t.Errorf("signature %d = %q, want the one of secret %d alone, %q", i, sigs[i], i, one.Get("webhook-signature"))
			}
		}
		for _, tt := range []struct {
			name    string
			secrets []string
			want    error
		}{
			{"newest", []string{newest}, nil},
			{"old", []string{old}, nil},
			{"other", []string{other}, signature.ErrInvalidSignature},
			{"other then old", []string{other, old}, nil},
		} {
			if err := signature.Verify(h, body, tt.secrets, now); !errors.Is(err, tt.want) {
				t.Errorf("Verify with %s secret = %v, want %v", tt.name, err, tt.want)
			}
		}
	})

	t.Run("seed signs with the newest secret only", func(t *testing.T) {
		h := sign(t, s, signature.Seed, []string{newest, old}, "evt_1", ts, body)
		if v := h.Values("X-Hookstream-Signature"); len(v) != 1 || strings.Count(v[0], "sha256=") != 1 {
			t.Fatalf("X-Hookstream-Signature = %q, want one value", v)
		}
		for _, tt := range []struct {
			name    string
			secrets []string
			want    error
		}{
			{"newest", []string{newest}, nil},
			{"old", []string{old}, signature.ErrInvalidSignature},
			{"old and newest", []string{old, newest}, nil},
		} {
			if err := signature.Verify(h, body, tt.secrets, now); !errors.Is(err, tt.want) {
				t.Errorf("Verify with %s secret = %v, want %v", tt.name, err, tt.want)
			}
		}
	})
}

func TestTamper(t *testing.T) {
	secret := newSecret(t)
	body := []byte(`{"id":"evt_1","event":"agent.created","data":{"n":1}}`)
	const ts = 1_700_000_000
	s := signature.NewSigner()
	tests := []struct {
		name   string
		scheme signature.Scheme
		tamper func(h http.Header, body []byte) []byte
		want   error
	}{
		{"untouched", signature.Standard, func(h http.Header, b []byte) []byte { return b }, nil},
		{"body", signature.Standard, func(h http.Header, b []byte) []byte { return flip(b, 20) }, signature.ErrInvalidSignature},
		{"body appended", signature.Standard, func(h http.Header, b []byte) []byte { return append(b, ' ') }, signature.ErrInvalidSignature},
		{"id", signature.Standard, func(h http.Header, b []byte) []byte { h.Set("webhook-id", "evt_2"); return b }, signature.ErrInvalidSignature},
		{"timestamp", signature.Standard, func(h http.Header, b []byte) []byte {
			h.Set("webhook-timestamp", strconv.Itoa(ts+1))
			return b
		}, signature.ErrInvalidSignature},
		{"signature", signature.Standard, func(h http.Header, b []byte) []byte {
			h.Set("webhook-signature", string(flip([]byte(h.Get("webhook-signature")), 10)))
			return b
		}, signature.ErrInvalidSignature},
		{"version", signature.Standard, func(h http.Header, b []byte) []byte {
			h.Set("webhook-signature", "v2"+strings.TrimPrefix(h.Get("webhook-signature"), "v1"))
			return b
		}, signature.ErrInvalidSignature},
		{"seed untouched", signature.Seed, func(h http.Header, b []byte) []byte { return b }, nil},
		{"seed body", signature.Seed, func(h http.Header, b []byte) []byte { return flip(b, 20) }, signature.ErrInvalidSignature},
		{"seed signature", signature.Seed, func(h http.Header, b []byte) []byte {
			h.Set("X-Hookstream-Signature", string(flip([]byte(h.Get("X-Hookstream-Signature")), 10)))
			return b
		}, signature.ErrInvalidSignature},
		// The seed scheme signs the body only, as documented on Verify.
		{"seed timestamp is not signed", signature.Seed, func(h http.Header, b []byte) []byte {
			h.Set("X-Hookstream-Timestamp", strconv.Itoa(ts+1))
			return b
		}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := sign(t, s, tt.scheme, []string{secret}, "evt_1", ts, body)
			b := tt.tamper(h, append([]byte(nil), body...))
			if err := signature.Verify(h, b, []string{secret}, signature.WithNow(at(ts))); !errors.Is(err, tt.want) {
				t.Fatalf("Verify = %v, want %v", err, tt.want)
			}
		})
	}
}

// flip changes one byte of b, keeping it printable. 'a' becomes 'B', not 'A':
// hex decoding ignores case, so 'a' to 'A' would leave a seed signature valid.
func flip(b []byte, i int) []byte {
	b = append([]byte(nil), b...)
	if b[i] == 'A' || b[i] == 'a' {
		b[i] = 'B'
	} else {
		b[i] = 'A'
	}
	return b
}

func TestTolerance(t *testing.T) {
	secret := newSecret(t)
	body := []byte(`{}`)
	const now = 1_700_000_000
	s := signature.NewSigner()
	tests := []struct {
		name string
		ts   int64
		now  time.Time
		opts []signature.VerifyOption
		want error
	}{
		{"now", now, time.Unix(now, 0), nil, nil},
		{"5m old", now - 300, time.Unix(now, 0), nil, nil},
		{"5m1s old", now - 301, time.Unix(now, 0), nil, signature.ErrTimestampOutOfRange},
		{"5m new", now + 300, time.Unix(now, 0), nil, nil},
		{"5m1s new", now + 301, time.Unix(now, 0), nil, signature.ErrTimestampOutOfRange},
		{"5m old, clock mid-second", now - 300, time.Unix(now, 999_999_999), nil, nil},
		{"a day old", now - 86400, time.Unix(now, 0), nil, signature.ErrTimestampOutOfRange},
		{"10s tolerance, 10s old", now - 10, time.Unix(now, 0), []signature.VerifyOption{signature.WithTolerance(10 * time.Second)}, nil},
		{"10s tolerance, 11s old", now - 11, time.Unix(now, 0), []signature.VerifyOption{signature.WithTolerance(10 * time.Second)}, signature.ErrTimestampOutOfRange},
		{"10s tolerance, 11s new", now + 11, time.Unix(now, 0), []signature.VerifyOption{signature.WithTolerance(10 * time.Second)}, signature.ErrTimestampOutOfRange},
		{"0 tolerance, same second", now, time.Unix(now, 500_000_000), []signature.VerifyOption{signature.WithTolerance(0)}, nil},
		{"0 tolerance, 1s old", now - 1, time.Unix(now, 0), []signature.VerifyOption{signature.WithTolerance(0)}, signature.ErrTimestampOutOfRange},
		{"negative tolerance is 0", now - 1, time.Unix(now, 0), []signature.VerifyOption{signature.WithTolerance(-time.Hour)}, signature.ErrTimestampOutOfRange},
		{"1h tolerance, 59m old", now - 59*60, time.Unix(now, 0), []signature.VerifyOption{signature.WithTolerance(time.Hour)}, nil},
	}
	for _, tt := range tests {
		for _, scheme := range []signature.Scheme{signature.Standard, signature.Seed} {
			t.Run(scheme.String()+"/"+tt.name, func(t *testing.T) {
				h := sign(t, s, scheme, []string{secret}, "evt_1", tt.ts, body)
				opts := append([]signature.VerifyOption{signature.WithNow(func() time.Time { return tt.now })}, tt.opts...)
				if err := signature.Verify(h, body, []string{secret}, opts...); !errors.Is(err, tt.want) {
					t.Fatalf("Verify = %v, want %v", err, tt.want)
				}
			})
		}
	}

	t.Run("default clock is time.Now", func(t *testing.T) {
		fresh := sign(t, s, signature.Standard, []string{secret}, "evt_1", time.Now().Unix(), body)
		if err := signature.Verify(fresh, body, []string{secret}, signature.WithNow(nil)); err != nil {
			t.Fatalf("fresh request: %v", err)
		}
		stale := sign(t, s, signature.Standard, []string{secret}, "evt_1", time.Now().Add(-time.Hour).Unix(), body)
		if err := signature.Verify(stale, body, []string{secret}); !errors.Is(err, signature.ErrTimestampOutOfRange) {
			t.Fatalf("hour-old request: %v, want ErrTimestampOutOfRange", err)
		}
	})
}

func TestSeedHeaders(t *testing.T) {
	secret := newSecret(t)
	body := []byte(`{"id":"evt_9","event":"call.ended"}`)
	const ts = 1_700_000_000
	tests := []struct {
		brand  string
		prefix string // canonical header prefix
	}{
		{"", "X-Hookstream-"}, // default
		{"Alfred", "X-Alfred-"},
		{"alfred", "X-Alfred-"},
		{"acme-corp", "X-Acme-Corp-"},
		{"ACME2", "X-Acme2-"},
	}
	for _, tt := range tests {
		t.Run(tt.prefix, func(t *testing.T) {
			var opts []signature.Option
			var vopts = []signature.VerifyOption{signature.WithNow(at(ts))}
			if tt.brand != "" {
				opts = append(opts, signature.WithBrand(tt.brand))
				vopts = append(vopts, signature.WithBrand(tt.brand))
			}
			s := signature.NewSigner(opts...)
			h := make(http.Header)
			if err := s.Sign(h, signature.Seed, []string{secret}, "evt_9", "call.ended", time.Unix(ts, 0), body); err != nil {
				t.Fatal(err)
			}
			want := map[string]string{
				tt.prefix + "Timestamp": strconv.Itoa(ts),
				tt.prefix + "Event":     "call.ended",
				tt.prefix + "Delivery":  "evt_9",
			}
			for name, v := range want {
				if got := h[name]; len(got) != 1 || got[0] != v {
					t.Errorf("h[%q] = %q, want [%q]", name, got, v)
				}
			}
			sig := h[tt.prefix+"Signature"]
			if len(sig) != 1 || !strings.HasPrefix(sig[0], "sha256=") || len(sig[0]) != len("sha256=")+64 {
				t.Errorf("h[%q] = %q, want [sha256=<64 hex>]", tt.prefix+"Signature", sig)
			}
			if len(h) != 4 {
				t.Errorf("Sign set %d headers, want 4: %v", len(h), h)
			}
			if err := signature.Verify(h, body, []string{secret}, vopts...); err != nil {
				t.Errorf("Verify with the brand: %v", err)
			}
			if tt.brand != "" && !strings.EqualFold(tt.brand, signature.DefaultBrand) {
				if err := signature.Verify(h, body, []string{secret}, signature.WithNow(at(ts))); !errors.Is(err, signature.ErrMissingHeaders) {
					t.Errorf("Verify with the default brand = %v, want ErrMissingHeaders", err)
				}
			}
		})
	}
}

func TestInvalidBrand(t *testing.T) {
	secret := newSecret(t)
	for _, brand := range []string{"", "Al fred", "Al:fred", "Ålfred", "Al\nfred", "Al_fred"} {
		s := signature.NewSigner(signature.WithBrand(brand))
		h := make(http.Header)
		if err := s.Sign(h, signature.Standard, []string{secret}, "evt_1", "x", time.Unix(1, 0), nil); !errors.Is(err, signature.ErrInvalidBrand) {
			t.Errorf("Sign with brand %q = %v, want ErrInvalidBrand", brand, err)
		}
		if len(h) != 0 {
			t.Errorf("Sign with brand %q set headers %v", brand, h)
		}
		if err := signature.Verify(http.Header{}, nil, []string{secret}, signature.WithBrand(brand)); !errors.Is(err, signature.ErrInvalidBrand) {
			t.Errorf("Verify with brand %q = %v, want ErrInvalidBrand", brand, err)
		}
	}
}

func TestSignErrors(t *testing.T) {
	secret := newSecret(t)
	s := signature.NewSigner()
	tests := []struct {
		name    string
		scheme  signature.Scheme
		secrets []string
		id      string
		event   string
		want    error // nil: any error
	}{
		{"no secrets", signature.Standard, nil, "evt_1", "a.b", signature.ErrInvalidSecret},
		{"no secrets seed", signature.Seed, []string{}, "evt_1", "a.b", signature.ErrInvalidSecret},
		{"invalid secret", signature.Standard, []string{"hunter2"}, "evt_1", "a.b", signature.ErrInvalidSecret},
		{"invalid second secret", signature.Standard, []string{secret, "whsec_"}, "evt_1", "a.b", signature.ErrInvalidSecret},
		{"invalid secret seed", signature.Seed, []string{"hunter2"}, "evt_1", "a.b", signature.ErrInvalidSecret},
		{"unknown scheme", signature.Scheme(9), []string{secret}, "evt_1", "a.b", signature.ErrInvalidScheme},
		{"empty id", signature.Standard, []string{secret}, "", "a.b", nil},
		{"newline in id", signature.Standard, []string{secret}, "evt_1\r\nX-Evil: 1", "a.b", nil},
		{"newline in event", signature.Seed, []string{secret}, "evt_1", "a.b\nX-Evil: 1", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := make(http.Header)
			err := s.Sign(h, tt.scheme, tt.secrets, tt.id, tt.event, time.Unix(1, 0), []byte("{}"))
			if err == nil || tt.want != nil && !errors.Is(err, tt.want) {
				t.Fatalf("Sign = %v, want error %v", err, tt.want)
			}
			if len(h) != 0 {
				t.Fatalf("failed Sign set headers %v", h)
			}
		})
	}
}

func TestVerifySecrets(t *testing.T) {
	secret := newSecret(t)
	h := sign(t, signature.NewSigner(), signature.Standard, []string{secret}, "evt_1", 1, nil)
	for _, secrets := range [][]string{nil, {}, {"not-a-secret"}, {secret, "whsec_short"}} {
		if err := signature.Verify(h, nil, secrets, signature.WithNow(at(1))); !errors.Is(err, signature.ErrInvalidSecret) {
			t.Errorf("Verify with secrets %q = %v, want ErrInvalidSecret", secrets, err)
		}
	}
}

// TestMalformedHeaders feeds Verify broken headers: each must give its
// documented error, never a panic.
func TestMalformedHeaders(t *testing.T) {
	secret := newSecret(t)
	body := []byte(`{"a":1}`)
	const ts = 1_700_000_000
	good := sign(t, signature.NewSigner(), signature.Standard, []string{secret}, "evt_1", ts, body)
	goodSeed := sign(t, signature.NewSigner(), signature.Seed, []string{secret}, "evt_1", ts, body)
	// signedAt signs with any timestamp string, which the Signer cannot
	// produce, so that Verify gets past the signature to the timestamp.
	signedAt := func(tsHeader string) http.Header { return standardHeader(t, secret, "evt_1", tsHeader, body) }
	with := func(base http.Header, kv ...string) http.Header {
		h := base.Clone()
		for i := 0; i < len(kv); i += 2 {
			if kv[i+1] == "<del>" {
				h.Del(kv[i])
			} else {
				h.Set(kv[i], kv[i+1])
			}
		}
		return h
	}
	tests := []struct {
		name string
		h    http.Header
		want error
	}{
		{"no headers", http.Header{}, signature.ErrMissingHeaders},
		{"nil headers", nil, signature.ErrMissingHeaders},
		{"empty signature value", with(good, "webhook-signature", ""), signature.ErrMissingHeaders},
		{"no id", with(good, "webhook-id", "<del>"), signature.ErrMissingHeaders},
		{"no timestamp", with(good, "webhook-timestamp", "<del>"), signature.ErrMissingHeaders},
		{"signature v1, only", with(good, "webhook-signature", "v1,"), signature.ErrInvalidSignature},
		{"signature not base64", with(good, "webhook-signature", "v1,!!!!"), signature.ErrInvalidSignature},
		{"signature garbage", with(good, "webhook-signature", "garbage"), signature.ErrInvalidSignature},
		{"signature commas", with(good, "webhook-signature", ",,, , ,v1"), signature.ErrInvalidSignature},
		{"signature short", with(good, "webhook-signature", "v1,AAAA"), signature.ErrInvalidSignature},
		{"signature huge", with(good, "webhook-signature", strings.Repeat("v1,"+strings.Repeat("A", 44)+" ", 10000)), signature.ErrInvalidSignature},
		{"valid among garbage", with(good, "webhook-signature", "v1a,xyz v1,AAAA "+good.Get("webhook-signature")+" junk"), nil},
		{"timestamp not a number", signedAt("soon"), signature.ErrMissingHeaders},
		{"timestamp overflows int64", signedAt("99999999999999999999"), signature.ErrMissingHeaders},
		{"timestamp empty", with(signedAt(""), "webhook-timestamp", ""), signature.ErrMissingHeaders},
		{"timestamp min int64", signedAt("-9223372036854775808"), signature.ErrTimestampOutOfRange},
		{"timestamp max int64", signedAt("9223372036854775807"), signature.ErrTimestampOutOfRange},
		{"timestamp fractional", signedAt("1700000000.5"), signature.ErrMissingHeaders},
		{"seed no timestamp", with(goodSeed, "X-Hookstream-Timestamp", "<del>"), signature.ErrMissingHeaders},
		{"seed timestamp garbage", with(goodSeed, "X-Hookstream-Timestamp", "yesterday"), signature.ErrMissingHeaders},
		{"seed signature no prefix", with(goodSeed, "X-Hookstream-Signature", strings.TrimPrefix(goodSeed.Get("X-Hookstream-Signature"), "sha256=")), signature.ErrInvalidSignature},
		{"seed signature not hex", with(goodSeed, "X-Hookstream-Signature", "sha256=zz"), signature.ErrInvalidSignature},
		{"seed signature empty", with(goodSeed, "X-Hookstream-Signature", "sha256="), signature.ErrInvalidSignature},
		{"seed signature uppercase hex", with(goodSeed, "X-Hookstream-Signature", "sha256="+strings.ToUpper(strings.TrimPrefix(goodSeed.Get("X-Hookstream-Signature"), "sha256="))), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := signature.Verify(tt.h, body, []string{secret}, signature.WithNow(at(ts)))
			if !errors.Is(err, tt.want) {
				t.Fatalf("Verify = %v, want %v", err, tt.want)
			}
		})
	}
}

// standardHeader builds Standard Webhooks headers for any timestamp string,
// computing the signature with crypto/hmac directly rather than the Signer.
func standardHeader(t *testing.T, secret, id, ts string, body []byte) http.Header {
	t.Helper()
	key, err := signature.ParseSecret(secret)
	if err != nil {
		t.Fatal(err)
	}
	m := hmac.New(sha256.New, key)
	m.Write([]byte(id + "." + ts + "."))
	m.Write(body)
	h := http.Header{}
	h.Set("webhook-id", id)
	h.Set("webhook-timestamp", ts)
	h.Set("webhook-signature", "v1,"+base64.StdEncoding.EncodeToString(m.Sum(nil)))
	return h
}

// TestSignConcurrent shares one Signer across goroutines, as the
// deliverer's lanes do: the pooled HMAC states must never mix inputs.
func TestSignConcurrent(t *testing.T) {
	secrets := []string{newSecret(t), newSecret(t), newSecret(t)}
	s := signature.NewSigner()
	want := make(map[string]http.Header)
	for i, secret := range secrets {
		id := "evt_" + strconv.Itoa(i)
		want[id] = standardHeader(t, secret, id, "1700000000", []byte(id))
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Go(func() {
			for n := range 500 {
				i := (g + n) % len(secrets)
				id := "evt_" + strconv.Itoa(i)
				h := make(http.Header)
				if err := s.Sign(h, signature.Standard, secrets[i:i+1], id, "x", time.Unix(1_700_000_000, 0), []byte(id)); err != nil {
					errs <- err
					return
				}
				if got := h.Get("webhook-signature"); got != want[id].Get("webhook-signature") {
					errs <- fmt.Errorf("%s signed as %q, want %q", id, got, want[id].Get("webhook-signature"))
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}
