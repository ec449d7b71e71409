package signature_test

import (
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/hookstream/hookstream/signature"
)

func TestReadHeaders(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    http.Header
		wantErr bool
	}{
		{"lines", "Webhook-Id: evt_1\nwebhook-timestamp: 17\n", http.Header{"Webhook-Id": {"evt_1"}, "Webhook-Timestamp": {"17"}}, false},
		{"no final newline", "A: 1\nB: 2", http.Header{"A": {"1"}, "B": {"2"}}, false},
		{"crlf", "A: 1\r\nB: 2\r\n\r\n", http.Header{"A": {"1"}, "B": {"2"}}, false},
		{"spaces trimmed", "A:1\nB:    2   \n", http.Header{"A": {"1"}, "B": {"2"}}, false},
		{"empty value", "A:\n", http.Header{"A": {""}}, false},
		{"colons in value", "Host: example.com:8080\n", http.Header{"Host": {"example.com:8080"}}, false},
		{"repeated name", "A: 1\na: 2\n", http.Header{"A": {"1", "2"}}, false},
		{"whole request", "POST /hook HTTP/1.1\nA: 1\n\n{\"b\": \"C: 3\"}\n", http.Header{"A": {"1"}}, false},
		{"leading blank lines", "\n\nA: 1\n", http.Header{"A": {"1"}}, false},
		{"http2 pseudo headers", ":method: POST\n:path: /hook\nA: 1\n", http.Header{"A": {"1"}}, false},
		{"empty", "", http.Header{}, false},
		{"no colon", "A: 1\njunk\n", nil, true},
		{"folded line", "A: 1\n  more\n", nil, true},
		{"space in name", "Bad Name: 1\n", nil, true},
		{"empty name", " : 1\n", nil, true},
		{"request line later", "A: 1\nPOST /hook HTTP/1.1\n", nil, true},
		{"line too long", "A: " + strings.Repeat("x", 2<<20) + "\n", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := signature.ReadHeaders(strings.NewReader(tt.in))
			if tt.wantErr {
				if err == nil {
					t.Fatalf("ReadHeaders = %v, want an error", got)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("ReadHeaders = %v, %v; want %v", got, err, tt.want)
			}
		})
	}
}

// TestReadHeadersVerify is the hookstream verify flow: headers saved as
// "Name: value" lines, read back, verified.
func TestReadHeadersVerify(t *testing.T) {
	newest, old := newSecret(t), newSecret(t)
	body := []byte(`{"id":"evt_1","event":"agent.created","data":{}}`)
	const ts = 1_700_000_000
	for _, scheme := range []signature.Scheme{signature.Standard, signature.Seed} {
		t.Run(scheme.String(), func(t *testing.T) {
			s := signature.NewSigner(signature.WithBrand("Alfred"))
			h := sign(t, s, scheme, []string{newest, old}, "evt_1", ts, body)
			h.Set("Content-Type", "application/json")
			var saved strings.Builder
			saved.WriteString("POST /webhook HTTP/1.1\r\n")
			names := make([]string, 0, len(h))
			for name := range h {
				names = append(names, name)
			}
			sort.Strings(names)
			for _, name := range names {
				fmt.Fprintf(&saved, "%s: %s\r\n", strings.ToLower(name), h.Get(name))
			}
			got, err := signature.ReadHeaders(strings.NewReader(saved.String()))
			if err != nil {
				t.Fatal(err)
			}
			opts := []signature.VerifyOption{signature.WithBrand("Alfred"), signature.WithNow(at(ts))}
			if err := signature.Verify(got, body, []string{newest}, opts...); err != nil {
				t.Fatalf("Verify(read headers) = %v", err)
			}
			if err := signature.Verify(got, body[1:], []string{newest}, opts...); !errors.Is(err, signature.ErrInvalidSignature) {
				t.Fatalf("Verify(read headers, other body) = %v, want ErrInvalidSignature", err)
			}
			// A saved request checked later fails on time, not on the signature.
			late := signature.WithNow(func() time.Time { return time.Unix(ts, 0).Add(time.Hour) })
			if err := signature.Verify(got, body, []string{newest}, signature.WithBrand("Alfred"), late); !errors.Is(err, signature.ErrTimestampOutOfRange) {
				t.Fatalf("Verify an hour later = %v, want ErrTimestampOutOfRange", err)
			}
		})
	}
}
