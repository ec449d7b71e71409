package jsonptr

import (
	"strings"
	"testing"
)

func TestToken(t *testing.T) {
	tests := []struct{ key, want string }{
		{"data", "/data"},
		{"a/b", "/a~1b"},
		{"m~n", "/m~0n"},
		{"~/", "/~0~1"},
		{"", "/"},
	}
	for _, tt := range tests {
		if got := Token(tt.key); got != tt.want {
			t.Errorf("Token(%q) = %q, want %q", tt.key, got, tt.want)
		}
		var b strings.Builder
		WriteToken(&b, tt.key)
		if b.String() != tt.want {
			t.Errorf("WriteToken(%q) = %q, want %q", tt.key, b.String(), tt.want)
		}
	}
}
