package kafkasec

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestOAuthToken reads the OAUTHBEARER token at each authentication, from
// a file (a projected service account token) or a command.
func TestOAuthToken(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "token")
	write := func(s string) {
		if err := os.WriteFile(file, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("tok-1\n")
	s := SASL{Mechanism: OAuthBearer, TokenFile: file}
	if tok, err := s.token(context.Background()); err != nil || tok != "tok-1" {
		t.Fatalf("token = %q, %v", tok, err)
	}
	write("tok-2") // rotated: the next authentication uses it
	if tok, err := s.token(context.Background()); err != nil || tok != "tok-2" {
		t.Fatalf("after rotation token = %q, %v", tok, err)
	}
	tests := []struct {
		cmd, want, wantErr string
	}{
		{cmd: "printf 'tok-cmd\\n'", want: "tok-cmd"},
		{cmd: "echo broken >&2; exit 3", wantErr: "broken"},
		{cmd: "true", wantErr: "printed nothing"},
	}
	for _, tt := range tests {
		tok, err := SASL{Mechanism: OAuthBearer, TokenCommand: tt.cmd}.token(context.Background())
		switch {
		case tt.wantErr == "" && (err != nil || tok != tt.want):
			t.Errorf("%s: token = %q, %v; want %q", tt.cmd, tok, err, tt.want)
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
			t.Errorf("%s: err = %v, want one containing %q", tt.cmd, err, tt.wantErr)
		}
	}
}
