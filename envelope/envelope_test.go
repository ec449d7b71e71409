package envelope_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/encoding/json"

	"github.com/hookstream/hookstream/envelope"
	"github.com/hookstream/hookstream/schemas"
)

const ts = "2026-03-04T12:00:00+00:00"

// seeds returns the example envelopes of the seed catalog, as published there.
func seeds(t testing.TB) map[string][]byte {
	t.Helper()
	return examples(t, "seeds", 21)
}

// agenFleet returns an example envelope of each of the 6 AgenFleet types,
// in that seed's style ("Z" timestamps), one of agent.status_changed in
// its vocabulary (online/degraded/offline).
func agenFleet(t testing.TB) map[string][]byte {
	t.Helper()
	return examples(t, "agenfleet", 6)
}

// examples reads the n <type>.json files of testdata/dir.
func examples(t testing.TB, dir string, n int) map[string][]byte {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", dir, "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != n {
		t.Fatalf("want %d example envelopes in testdata/%s, found %d", n, dir, len(files))
	}
	out := map[string][]byte{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out[filepath.Base(f)] = b
	}
	return out
}

// TestAgenFleetExamples: the AgenFleet envelopes of the fuzz corpus decode,
// and their data is valid for the catalog, so the corpus stays realistic.
func TestAgenFleetExamples(t *testing.T) {
	cat, err := schemas.Load()
	if err != nil {
		t.Fatal(err)
	}
	for name, b := range agenFleet(t) {
		e, err := envelope.Decode(b, 0)
		if err != nil {
			t.Fatalf("%s: Decode: %v", name, err)
		}
		if e.Event+".json" != name || !strings.HasSuffix(e.Timestamp, "Z") {
			t.Errorf("%s: decoded %+v", name, e)
		}
		if err := cat.Validate(e.Event, e.Data); err != nil {
			t.Errorf("%s: data: %v", name, err)
		}
	}
}

func TestSeedsRoundTrip(t *testing.T) {
	for name, b := range seeds(t) {
		t.Run(name, func(t *testing.T) {
			e, err := envelope.Decode(b, 0)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if e.Event+".json" != name || !envelope.ValidID(e.ID) || e.Timestamp != ts {
				t.Fatalf("decoded %+v", e)
			}
			enc, err := e.Encode()
			if err != nil {
				t.Fatalf("Encode: %v", err)
			}
			// The top level is written compactly; data is carried as sent.
			want := `{"id":"` + e.ID + `","event":"` + e.Event + `","timestamp":"` + ts + `","data":` + string(e.Data) + `}`
			if string(enc) != want {
				t.Fatalf("Encode:\n got %s\nwant %s", enc, want)
			}
			// Same JSON value as the seed.
			var a, c any
			if err := json.Unmarshal(b, &a); err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(enc, &c); err != nil {
				t.Fatal(err)
			}
			ja, _ := json.Marshal(a)
			jc, _ := json.Marshal(c)
			if !bytes.Equal(ja, jc) {
				t.Fatalf("encoded value differs from the seed:\n%s\n%s", ja, jc)
			}
			back, err := envelope.Decode(enc, 0)
			if err != nil {
				t.Fatalf("Decode(Encode): %v", err)
			}
			if !equal(back, e) {
				t.Fatalf("round trip: got %+v, want %+v", back, e)
			}
		})
	}
}

func equal(a, b envelope.Event) bool {
	return a.ID == b.ID && a.Event == b.Event && a.Timestamp == b.Timestamp && bytes.Equal(a.Data, b.Data)
}

func TestEncode(t *testing.T) {
	tests := []struct {
		name string
		e    envelope.Event
		want string
	}{
		{"canonical field order",
			envelope.Event{Data: json.RawMessage(`{"b":2,"a":1}`), Timestamp: ts, Event: "agent.created", ID: "evt_d5de32be887a9b82fe75ed48"},
			`{"id":"evt_d5de32be887a9b82fe75ed48","event":"agent.created","timestamp":"2026-03-04T12:00:00+00:00","data":{"b":2,"a":1}}`},
		{"data kept byte for byte inside, trimmed outside",
			envelope.Event{ID: "x", Event: "a.b", Timestamp: ts, Data: json.RawMessage(" \n{ \"n\" : 1.50, \"s\":\"\\u00e9<&>\" }\n")},
			`{"id":"x","event":"a.b","timestamp":"2026-03-04T12:00:00+00:00","data":{ "n" : 1.50, "s":"\u00e9<&>" }}`},
		{"strings escaped, HTML not",
			envelope.Event{ID: "idem-key:1.2_3", Event: "we\"ird\\<type>", Timestamp: "2026-03-04T12:00:00.123Z", Data: json.RawMessage(`{}`)},
			`{"id":"idem-key:1.2_3","event":"we\"ird\\<type>","timestamp":"2026-03-04T12:00:00.123Z","data":{}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.e.Encode()
			if err != nil {
				t.Fatalf("Encode: %v", err)
			}
			if string(got) != tt.want {
				t.Fatalf("Encode:\n got %s\nwant %s", got, tt.want)
			}
			app, err := tt.e.AppendEncode([]byte("prefix"))
			if err != nil || string(app) != "prefix"+tt.want {
				t.Fatalf("AppendEncode = %s, %v", app, err)
			}
		})
	}
}

func TestEncodeErrors(t *testing.T) {
	ok := envelope.Event{ID: "evt_1", Event: "a.b", Timestamp: ts, Data: json.RawMessage(`{}`)}
	tests := []struct {
		name    string
		mod     func(*envelope.Event)
		pointer string
		err     error
	}{
		{"no id", func(e *envelope.Event) { e.ID = "" }, "/id", envelope.ErrMissingField},
		{"bad id", func(e *envelope.Event) { e.ID = "evt 1" }, "/id", envelope.ErrInvalidField},
		{"no event", func(e *envelope.Event) { e.Event = "" }, "/event", envelope.ErrMissingField},
		{"event not UTF-8", func(e *envelope.Event) { e.Event = "a\xff" }, "/event", envelope.ErrInvalidField},
		{"no timestamp", func(e *envelope.Event) { e.Timestamp = "" }, "/timestamp", envelope.ErrMissingField},
		{"bad timestamp", func(e *envelope.Event) { e.Timestamp = "yesterday" }, "/timestamp", envelope.ErrInvalidField},
		{"no data", func(e *envelope.Event) { e.Data = nil }, "/data", envelope.ErrMissingField},
		{"data array", func(e *envelope.Event) { e.Data = json.RawMessage(`[1]`) }, "/data", envelope.ErrInvalidField},
		{"data malformed", func(e *envelope.Event) { e.Data = json.RawMessage(`{"a":}`) }, "/data", envelope.ErrMalformed},
		{"data two values", func(e *envelope.Event) { e.Data = json.RawMessage(`{}{}`) }, "/data", envelope.ErrMalformed},
		{"data not UTF-8", func(e *envelope.Event) { e.Data = json.RawMessage("{\"a\":\"\xff\"}") }, "/data", envelope.ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := ok
			tt.mod(&e)
			out, err := e.AppendEncode([]byte("keep"))
			checkFieldError(t, err, tt.pointer, tt.err)
			if string(out) != "keep" {
				t.Fatalf("dst changed on error: %q", out)
			}
		})
	}
}

func checkFieldError(t *testing.T, err error, pointer string, sentinel error) {
	t.Helper()
	var fe *envelope.FieldError
	if !errors.As(err, &fe) {
		t.Fatalf("error %v (%T) is not a *FieldError", err, err)
	}
	if fe.Pointer != pointer {
		t.Errorf("pointer = %q, want %q (%v)", fe.Pointer, pointer, err)
	}
	if !errors.Is(err, sentinel) {
		t.Errorf("error %v does not wrap %v", err, sentinel)
	}
	if !strings.Contains(err.Error(), pointer) {
		t.Errorf("message %q does not name %q", err.Error(), pointer)
	}
}

func TestDecodeErrors(t *testing.T) {
	const (
		id   = `"id":"evt_1"`
		ev   = `"event":"a.b"`
		tm   = `"timestamp":"2026-03-04T12:00:00+00:00"`
		data = `"data":{}`
	)
	obj := func(fields ...string) string { return "{" + strings.Join(fields, ",") + "}" }
	tests := []struct {
		name    string
		in      string
		pointer string
		err     error
	}{
		{"empty input", ``, "", envelope.ErrMalformed},
		{"whitespace only", " \n", "", envelope.ErrMalformed},
		{"null", `null`, "", envelope.ErrMalformed},
		{"array", `[` + obj(id, ev, tm, data) + `]`, "", envelope.ErrMalformed},
		{"string", `"evt"`, "", envelope.ErrMalformed},
		{"truncated", obj(id, ev, tm, data)[:30], "", envelope.ErrMalformed},
		{"trailing data", obj(id, ev, tm, data) + ` x`, "", envelope.ErrMalformed},
		{"two objects", obj(id, ev, tm, data) + obj(id, ev, tm, data), "", envelope.ErrMalformed},
		{"trailing comma", `{` + id + `,` + ev + `,` + tm + `,` + data + `,}`, "", envelope.ErrMalformed},
		{"missing colon", `{"id" "evt_1"}`, "", envelope.ErrMalformed},
		{"unquoted key", `{id:"evt_1"}`, "", envelope.ErrMalformed},
		{"not UTF-8", obj(id, ev, tm, "\"data\":{\"a\":\"\xff\"}"), "", envelope.ErrMalformed},
		{"BOM", "\xef\xbb\xbf" + obj(id, ev, tm, data), "", envelope.ErrMalformed},
		{"unknown field", obj(id, ev, tm, data, `"tenant":"acme"`), "/tenant", envelope.ErrInvalidField},
		{"unknown field escaped", obj(`"a/b~c":1`, id, ev, tm, data), "/a~1b~0c", envelope.ErrInvalidField},
		{"wrong case", obj(`"ID":"evt_1"`, ev, tm, data), "/ID", envelope.ErrInvalidField},
		{"repeated id", obj(id, `"id":"evt_2"`, ev, tm, data), "/id", envelope.ErrInvalidField},
		{"repeated data", obj(id, ev, tm, data, data), "/data", envelope.ErrInvalidField},
		{"missing id", obj(ev, tm, data), "/id", envelope.ErrMissingField},
		{"missing event", obj(id, tm, data), "/event", envelope.ErrMissingField},
		{"missing timestamp", obj(id, ev, data), "/timestamp", envelope.ErrMissingField},
		{"missing data", obj(id, ev, tm), "/data", envelope.ErrMissingField},
		{"empty object", `{}`, "/id", envelope.ErrMissingField},
		{"id number", obj(`"id":1`, ev, tm, data), "/id", envelope.ErrInvalidField},
		{"id null", obj(`"id":null`, ev, tm, data), "/id", envelope.ErrInvalidField},
		{"id empty", obj(`"id":""`, ev, tm, data), "/id", envelope.ErrInvalidField},
		{"id with space", obj(`"id":"evt 1"`, ev, tm, data), "/id", envelope.ErrInvalidField},
		{"id too long", obj(`"id":"`+strings.Repeat("a", 129)+`"`, ev, tm, data), "/id", envelope.ErrInvalidField},
		{"id bad escape", obj(`"id":"\q"`, ev, tm, data), "/id", envelope.ErrMalformed},
		{"event object", obj(id, `"event":{}`, tm, data), "/event", envelope.ErrInvalidField},
		{"event empty", obj(id, `"event":""`, tm, data), "/event", envelope.ErrInvalidField},
		{"timestamp number", obj(id, ev, `"timestamp":1772625600`, data), "/timestamp", envelope.ErrInvalidField},
		{"timestamp not RFC 3339", obj(id, ev, `"timestamp":"2026-03-04 12:00:00"`, data), "/timestamp", envelope.ErrInvalidField},
		{"data null", obj(id, ev, tm, `"data":null`), "/data", envelope.ErrInvalidField},
		{"data array", obj(id, ev, tm, `"data":[]`), "/data", envelope.ErrInvalidField},
		{"data string", obj(id, ev, tm, `"data":"{}"`), "/data", envelope.ErrInvalidField},
		{"data number", obj(id, ev, tm, `"data":1`), "/data", envelope.ErrInvalidField},
		{"data malformed", obj(id, ev, tm, `"data":{"a":01}`), "/data", envelope.ErrMalformed},
		{"data unclosed", `{` + id + `,` + ev + `,` + tm + `,"data":{"a":1}`, "", envelope.ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := envelope.Decode([]byte(tt.in), 0)
			checkFieldError(t, err, tt.pointer, tt.err)
		})
	}
}

func TestDecodeAccepts(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want envelope.Event
	}{
		{"any field order and whitespace",
			" {\n \"data\" : { \"a\" : [1, 2] } ,\t\"timestamp\":\"2026-03-04T12:00:00Z\", \"event\":\"a.b\",\"id\":\"evt_1\" }\r\n",
			envelope.Event{ID: "evt_1", Event: "a.b", Timestamp: "2026-03-04T12:00:00Z", Data: json.RawMessage(`{ "a" : [1, 2] }`)}},
		{"escaped strings",
			`{"id":"\u0065vt_1","event":"a.\u00e9","timestamp":"2026-03-04T12:00:00.5+02:00","data":{}}`,
			envelope.Event{ID: "evt_1", Event: "a.é", Timestamp: "2026-03-04T12:00:00.5+02:00", Data: json.RawMessage(`{}`)}},
		{"uuid idempotency id",
			`{"id":"0b7c5c3e-3a4e-4b2b-9c59-0f9f1b1c2d3e","event":"a","timestamp":"2026-03-04T12:00:00Z","data":{"big":12345678901234567890}}`,
			envelope.Event{ID: "0b7c5c3e-3a4e-4b2b-9c59-0f9f1b1c2d3e", Event: "a", Timestamp: "2026-03-04T12:00:00Z", Data: json.RawMessage(`{"big":12345678901234567890}`)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := envelope.Decode([]byte(tt.in), 0)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if !equal(got, tt.want) {
				t.Fatalf("got %+v (data %s), want %+v", got, got.Data, tt.want)
			}
		})
	}
}

func TestDecodeTooLarge(t *testing.T) {
	e := envelope.Event{ID: "evt_1", Event: "a.b", Timestamp: ts}
	e.Data = json.RawMessage(`{"pad":"` + strings.Repeat("x", 1000) + `"}`)
	b, err := e.Encode()
	if err != nil {
		t.Fatal(err)
	}
	big := envelope.Event{ID: "evt_1", Event: "a.b", Timestamp: ts,
		Data: json.RawMessage(`{"pad":"` + strings.Repeat("x", envelope.DefaultMaxSize) + `"}`)}
	bigEnc, err := big.Encode()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		in   []byte
		max  int
		err  bool
	}{
		{"at the limit", b, len(b), false},
		{"one byte over", b, len(b) - 1, true},
		{"default limit applies for 0", bigEnc, 0, true},
		{"default limit applies for -1", bigEnc, -1, true},
		{"larger explicit limit", bigEnc, len(bigEnc), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := envelope.Decode(tt.in, tt.max)
			if !tt.err {
				if err != nil {
					t.Fatalf("Decode: %v", err)
				}
				return
			}
			checkFieldError(t, err, "", envelope.ErrTooLarge)
		})
	}
}

func TestDecodeCopiesStrings(t *testing.T) {
	b := []byte(`{"id":"evt_1","event":"a.b","timestamp":"2026-03-04T12:00:00Z","data":{"k":1}}`)
	e, err := envelope.Decode(b, 0)
	if err != nil {
		t.Fatal(err)
	}
	for i := range b {
		b[i] = 'z'
	}
	if e.ID != "evt_1" || e.Event != "a.b" || e.Timestamp != "2026-03-04T12:00:00Z" {
		t.Fatalf("strings alias the input: %+v", e)
	}
}

var generatedID = regexp.MustCompile(`^evt_[0-9a-f]{24}$`)

func TestNewID(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		id := envelope.NewID()
		if !generatedID.MatchString(id) {
			t.Fatalf("NewID() = %q, want %s", id, generatedID)
		}
		if !envelope.ValidID(id) {
			t.Fatalf("ValidID(NewID()) = false for %q", id)
		}
		if seen[id] {
			t.Fatalf("NewID repeated %q", id)
		}
		seen[id] = true
	}
}

func TestNew(t *testing.T) {
	before := time.Now().Add(-time.Second)
	e := envelope.New("agent.created", json.RawMessage(`{"a":1}`))
	if !generatedID.MatchString(e.ID) || e.Event != "agent.created" || string(e.Data) != `{"a":1}` {
		t.Fatalf("New = %+v", e)
	}
	at, err := time.Parse(envelope.TimeLayout, e.Timestamp)
	if err != nil || at.Before(before.Truncate(time.Second)) || at.After(time.Now()) || !strings.HasSuffix(e.Timestamp, "+00:00") {
		t.Fatalf("timestamp %q: %v", e.Timestamp, err)
	}
	if err := e.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestFormatTime(t *testing.T) {
	at := time.Date(2026, 3, 4, 13, 0, 0, 999, time.FixedZone("CET", 3600))
	if got := envelope.FormatTime(at); got != ts {
		t.Fatalf("FormatTime = %q, want %q", got, ts)
	}
}

func TestValidID(t *testing.T) {
	tests := []struct {
		id   string
		want bool
	}{
		{"evt_d5de32be887a9b82fe75ed48", true},
		{"0b7c5c3e-3a4e-4b2b-9c59-0f9f1b1c2d3e", true},
		{"order:42.v2_A-Z", true},
		{"x", true},
		{strings.Repeat("a", 128), true},
		{strings.Repeat("a", 129), false},
		{"", false},
		{"evt 1", false},
		{"evt/1", false},
		{"evt\n1", false},
		{"évt", false},
		{"evt,1", false},
		{"evt\"1", false},
		{"evt\x00", false},
	}
	for _, tt := range tests {
		if got := envelope.ValidID(tt.id); got != tt.want {
			t.Errorf("ValidID(%q) = %v, want %v", tt.id, got, tt.want)
		}
	}
}

func TestFieldErrorMessage(t *testing.T) {
	tests := []struct {
		err  envelope.FieldError
		want string
	}{
		{envelope.FieldError{Pointer: "/id", Err: envelope.ErrMissingField}, "envelope: missing field: /id"},
		{envelope.FieldError{Pointer: "", Err: envelope.ErrMalformed, Detail: "want a JSON object"}, "envelope: malformed JSON: want a JSON object"},
		{envelope.FieldError{Pointer: "/data", Err: envelope.ErrInvalidField, Detail: "want a JSON object"}, "envelope: invalid field: /data: want a JSON object"},
	}
	for _, tt := range tests {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("Error() = %q, want %q", got, tt.want)
		}
	}
}
