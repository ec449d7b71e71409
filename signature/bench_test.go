package signature_test

import (
	"bytes"
	"net/http"
	"testing"
	"time"

	"github.com/hookstream/hookstream/signature"
)

// BenchmarkSign measures the deliverer's per-attempt cost with a 1 KiB body
// and a reused header map, as a retried request reuses its headers.
func BenchmarkSign(b *testing.B) {
	body := bytes.Repeat([]byte(`{"k":"v"},`), 103)[:1024]
	newest, old := newSecret(b), newSecret(b)
	ts := time.Unix(1_700_000_000, 0)
	for _, bc := range []struct {
		name    string
		scheme  signature.Scheme
		secrets []string
	}{
		{"standard", signature.Standard, []string{newest}},
		{"standard-rotating", signature.Standard, []string{newest, old}},
		{"seed", signature.Seed, []string{newest}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			s := signature.NewSigner()
			h := make(http.Header)
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				if err := s.Sign(h, bc.scheme, bc.secrets, "evt_22b468b406512fa0ec9fab33", "agent.created", ts, body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkSignParallel is BenchmarkSign/standard from all Ps at once,
// sharing one Signer as the deliverer's lanes do.
func BenchmarkSignParallel(b *testing.B) {
	body := bytes.Repeat([]byte(`{"k":"v"},`), 103)[:1024]
	secret := newSecret(b)
	ts := time.Unix(1_700_000_000, 0)
	s := signature.NewSigner()
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		h := make(http.Header)
		for pb.Next() {
			if err := s.Sign(h, signature.Standard, []string{secret}, "evt_22b468b406512fa0ec9fab33", "agent.created", ts, body); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func BenchmarkVerify(b *testing.B) {
	body := bytes.Repeat([]byte(`{"k":"v"},`), 103)[:1024]
	secret := newSecret(b)
	ts := time.Unix(1_700_000_000, 0)
	for _, scheme := range []signature.Scheme{signature.Standard, signature.Seed} {
		b.Run(scheme.String(), func(b *testing.B) {
			h := make(http.Header)
			if err := signature.NewSigner().Sign(h, scheme, []string{secret}, "evt_1", "agent.created", ts, body); err != nil {
				b.Fatal(err)
			}
			now := signature.WithNow(func() time.Time { return ts })
			b.ReportAllocs()
			for b.Loop() {
				if err := signature.Verify(h, body, []string{secret}, now); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
