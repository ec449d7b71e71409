package envelope_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/hookstream/hookstream/envelope"
)

// FuzzDecode checks that Decode never panics; that every error it returns is
// a *FieldError wrapping one of the sentinels, naming the field with a
// top-level JSON pointer when it is about one field (missing, invalid) and
// naming none or one when it is about the input (malformed, too large); and
// that whatever it accepts re-encodes to bytes that decode to the same event
// and re-encode unchanged. The corpus starts from the example envelopes of
// both seeds.
func FuzzDecode(f *testing.F) {
	for _, b := range seeds(f) {
		f.Add(b)
	}
	for _, b := range agenFleet(f) {
		f.Add(b)
	}
	f.Add([]byte(`{"id":"evt_1","event":"a","timestamp":"2026-03-04T12:00:00Z","data":{"a":[1,{"b":null}],"c":"\u00e9\ud800"}}`))
	f.Add([]byte(`{"data":{},"timestamp":"2026-03-04T12:00:00.1-07:00","event":"\u2028","id":"a"}`))
	f.Add([]byte(`{"id":"evt_1","id":"evt_2"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := envelope.Decode(b, 0)
		if err != nil {
			var fe *envelope.FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("error %v is not a *FieldError", err)
			}
			field := errors.Is(err, envelope.ErrMissingField) || errors.Is(err, envelope.ErrInvalidField)
			if !field && !errors.Is(err, envelope.ErrMalformed) && !errors.Is(err, envelope.ErrTooLarge) {
				t.Fatalf("error %v wraps no sentinel", err)
			}
			// A top-level pointer is "/" and one segment, whose own "/"
			// is escaped as "~1".
			if field && fe.Pointer == "" {
				t.Fatalf("error %v is about a field but names none", err)
			}
			if p := fe.Pointer; p != "" && (p[0] != '/' || strings.Contains(p[1:], "/")) {
				t.Fatalf("error %v: pointer %q is not a top-level JSON pointer", err, p)
			}
			return
		}
		enc, err := e.Encode()
		if err != nil {
			t.Fatalf("Decode accepted %q but Encode fails: %v", b, err)
		}
		// Escaping may make the encoding longer than the input.
		back, err := envelope.Decode(enc, max(len(enc), envelope.DefaultMaxSize))
		if err != nil {
			t.Fatalf("Decode(Encode(%q)) = %v; encoded %q", b, err, enc)
		}
		if !equal(back, e) {
			t.Fatalf("round trip changed the event:\n got %+v\nwant %+v", back, e)
		}
		again, err := back.Encode()
		if err != nil || string(again) != string(enc) {
			t.Fatalf("Encode not stable: %q then %q (%v)", enc, again, err)
		}
	})
}
