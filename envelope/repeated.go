package envelope

import (
	"strconv"
	"strings"

	"github.com/segmentio/encoding/json"

	"github.com/hookstream/hookstream/internal/jsonptr"
)

// RepeatedKey returns the JSON pointer of the first key that repeats an
// earlier key of the same object in b, which must be valid JSON.
func RepeatedKey(b []byte) (string, bool) {
	// One frame per open object or array; seg is the pointer segment of
	// the value being read in it. Frames, and their key sets, are reused
	// by the next container at the same depth.
	type frame struct {
		keys map[string]struct{} // nil for an array
		seg  string
	}
	var stack []frame
	for tk := json.NewTokenizer(b); tk.Next(); {
		switch {
		case tk.Delim == '{' || tk.Delim == '[':
			if n := len(stack); n > 0 && stack[n-1].keys == nil {
				stack[n-1].seg = strconv.Itoa(tk.Index)
			}
			if len(stack) == cap(stack) {
				stack = append(stack, frame{})
			} else {
				stack = stack[:len(stack)+1]
			}
			top := &stack[len(stack)-1]
			switch {
			case tk.Delim == '[':
				top.keys = nil
			case top.keys == nil:
				top.keys = map[string]struct{}{}
			default:
				clear(top.keys)
			}
		case tk.Delim == '}' || tk.Delim == ']':
			stack = stack[:len(stack)-1]
		case tk.IsKey:
			top := &stack[len(stack)-1]
			key := tk.String()
			if _, dup := top.keys[string(key)]; dup {
				var ptr strings.Builder
				for _, f := range stack[:len(stack)-1] {
					jsonptr.WriteToken(&ptr, f.seg)
				}
				jsonptr.WriteToken(&ptr, string(key))
				return ptr.String(), true
			}
			top.seg = string(key)
			top.keys[top.seg] = struct{}{}
		}
	}
	return "", false
}
