package envelope

import (
	"testing"
)

func TestRepeatedKey(t *testing.T) {
	tests := []struct {
		json string
		ptr  string // "" = none repeated
	}{
		{`{}`, ""},
		{`[1,"a",null,{"a":1}]`, ""},
		{`{"a":1,"b":{"a":1},"c":[{"a":1},{"a":1}]}`, ""},
		{`[{"a":1,"b":2},{"a":1,"b":2}]`, ""}, // siblings reuse a frame: its keys are cleared
		{`{"a":{"x":{}},"b":{"x":{}}}`, ""},
		{`{"a":1,"a":1}`, "/a"},
		{`{"a":{"b":[0,1,{"c":1,"c":2}]}}`, "/a/b/2/c"},
		{`[{"a":1},{"b":1,"b":2}]`, "/1/b"},
		{`{"~/":1,"~/":2}`, "/~0~1"},
		{`{"\u00e9":1,"é":2}`, "/é"},
		{`{"a":[{"x":1}],"a":2}`, "/a"},
		{`{"outer":{"a":1},"a":1,"outer2":{"a":1,"a":2}}`, "/outer2/a"},
	}
	for _, tt := range tests {
		ptr, ok := RepeatedKey([]byte(tt.json))
		if ok != (tt.ptr != "") || ptr != tt.ptr {
			t.Errorf("RepeatedKey(%s) = %q, %v; want %q", tt.json, ptr, ok, tt.ptr)
		}
	}
}
