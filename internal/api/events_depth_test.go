package api

import (
	"strings"
	"testing"
)

func TestNestedTooDeep(t *testing.T) {
	tests := []struct {
		json string
		deep bool
	}{
		{`{}`, false},
		{`[[[]]]`, false},
		{`[[[[]]]]`, true},
		{`[[[1],[2]],[[3]]]`, false},
		{`{"a":{"b":{"c":{}}}}`, true},
		{`["[[[[", "{{{{"]`, false},
		{`["\"[[[["]`, false},
		{`["\\", [[[]]]]`, true},
		{`[[[` + strings.Repeat("]", 10) + `[[[`, false}, // invalid JSON: left to the parser
	}
	for _, tt := range tests {
		if got := nestedTooDeep([]byte(tt.json), 3); got != tt.deep {
			t.Errorf("nestedTooDeep(%s, 3) = %v, want %v", tt.json, got, tt.deep)
		}
	}
}
