package api_test

import (
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/hookstream/hookstream/internal/api"
)

// TestAuthorizationScheme: the scheme is case-insensitive (RFC 9110 11.1),
// the token is not.
func TestAuthorizationScheme(t *testing.T) {
	base := epServer(t)
	tests := []struct {
		header string
		want   int
	}{
		{"Bearer tok-acme", http.StatusOK},
		{"bearer tok-acme", http.StatusOK},
		{"BEARER tok-acme", http.StatusOK},
		{"Bearer TOK-ACME", http.StatusUnauthorized},
		{"Basic tok-acme", http.StatusUnauthorized},
		{"Bearer", http.StatusUnauthorized},
		{"tok-acme", http.StatusUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.header, func(t *testing.T) {
			req, err := http.NewRequest("GET", base+"/v1/endpoints", nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Authorization", tt.header)
			resp, err := epClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.want {
				t.Errorf("Authorization %q: %d, want %d", tt.header, resp.StatusCode, tt.want)
			}
		})
	}
}

// TestParseTokensHidesTokens: a malformed list's error, which reaches
// stderr and logs, names the entry, never its text.
func TestParseTokensHidesTokens(t *testing.T) {
	for _, in := range []string{"sk_live_secret", "good=acme,sk_live_secret", "sk_live_secret="} {
		_, err := api.ParseTokens(in)
		if !errors.Is(err, api.ErrBadTokens) {
			t.Fatalf("ParseTokens(%q) = %v, want ErrBadTokens", in, err)
		}
		if strings.Contains(err.Error(), "sk_live") {
			t.Errorf("ParseTokens(%q) error %q shows the token", in, err)
		}
	}
}
