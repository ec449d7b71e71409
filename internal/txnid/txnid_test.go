package txnid

import (
	"regexp"
	"testing"
)

func TestNew(t *testing.T) {
	a, b := New("fanout"), New("fanout")
	if !regexp.MustCompile(`^hookstream-fanout-.+-[0-9a-f]{8}$`).MatchString(a) {
		t.Errorf("New = %q, want hookstream-fanout-<host>-<8 hex>", a)
	}
	if a == b {
		t.Errorf("two ids alike: %q", a)
	}
}
