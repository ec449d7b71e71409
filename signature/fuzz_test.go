package signature_test

import (
	"errors"
	"net/http"
	"testing"

	"github.com/hookstream/hookstream/signature"
)

// FuzzVerify feeds Verify arbitrary headers and bodies: it must never panic
// and must only return its documented errors.
func FuzzVerify(f *testing.F) {
	f.Add("evt_1", "1700000000", "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=", "sha256=00", []byte(`{}`))
	f.Add("", "", "", "", []byte(nil))
	f.Add("a.b", "-1", "v1, v1,, ,v1,====", "sha256=zz sha256=", []byte("x"))
	f.Add("x", "99999999999999999999", "v2,AAAA", "", []byte("{"))
	f.Fuzz(func(t *testing.T, id, ts, sig, seedSig string, body []byte) {
		h := http.Header{}
		h.Set("webhook-id", id)
		h.Set("webhook-timestamp", ts)
		h.Set("webhook-signature", sig)
		h.Set("X-Hookstream-Timestamp", ts)
		h.Set("X-Hookstream-Signature", seedSig)
		for _, hh := range []http.Header{h, withoutStandard(h)} {
			err := signature.Verify(hh, body, []string{specSecret}, signature.WithNow(at(1_700_000_000)))
			if err != nil && !errors.Is(err, signature.ErrMissingHeaders) &&
				!errors.Is(err, signature.ErrInvalidSignature) && !errors.Is(err, signature.ErrTimestampOutOfRange) {
				t.Fatalf("undocumented error %v", err)
			}
		}
	})
}

func withoutStandard(h http.Header) http.Header {
	h = h.Clone()
	h.Del("webhook-signature")
	return h
}
