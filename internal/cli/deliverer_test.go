package cli

import (
	"strings"
	"testing"
)

func TestDelivererFlags(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--retry-schedule", "0s,5s,5x"}, `--retry-schedule: invalid retry schedule: item 3 "5x"`},
		{[]string{"--retry-schedule", ""}, "--retry-schedule: invalid retry schedule: empty"},
		{[]string{"--park-threshold", "0s"}, "--park-threshold must be positive"},
		{[]string{"--max-in-flight", "0"}, "--max-in-flight must be at least 1"},
		{[]string{"--unordered-concurrency", "0"}, "--unordered-concurrency must be at least 1"},
		{[]string{"--max-buffered-bytes", "0"}, "--max-buffered-bytes must be at least 1"},
		{[]string{"--disable-after", "-1h"}, "--disable-after must not be negative"},
		{[]string{"--drain-timeout", "30s"}, "--drain-timeout (30s) must be at least 3s shorter than --shutdown-grace (25s)"},
		{[]string{"--signature-brand", "Bad Brand"}, "--signature-brand: signature: invalid brand"},
	}
	for _, tt := range tests {
		code, _, stderr := runMain(t, "", append([]string{"deliverer"}, tt.args...)...)
		if code != 2 || !strings.Contains(stderr, tt.want) {
			t.Errorf("deliverer %v: exit %d, stderr %q; want exit 2 saying %q", tt.args, code, stderr, tt.want)
		}
	}
}
