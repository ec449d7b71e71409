// Package envelope provides the canonical Hookstream event: the exact JSON
// object {"id","event","timestamp","data"} that producers publish to Kafka and
// receivers get as the POST body, byte for byte.
package envelope

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/hookstream/hookstream/internal/jsonptr"
	"github.com/segmentio/encoding/json"
)

// DefaultMaxSize is the largest encoded envelope accepted by default (256 KiB).
const DefaultMaxSize = 256 << 10

// TimeLayout is how timestamps are written: RFC 3339 with a numeric offset,
// matching the seed catalog ("2026-03-04T12:00:00+00:00").
const TimeLayout = "2006-01-02T15:04:05-07:00"

// maxIDLen bounds caller-supplied ids, which end up in headers and Redis keys.
const maxIDLen = 128

// Errors returned by Decode and Validate. Each error from Decode wraps one of
// these and names the field it concerns.
var (
	ErrTooLarge     = errors.New("envelope: too large")
	ErrMalformed    = errors.New("envelope: malformed JSON")
	ErrMissingField = errors.New("envelope: missing field")
	ErrInvalidField = errors.New("envelope: invalid field")
)

// FieldError names the envelope field an error concerns, as a JSON pointer
// ("/id", "/data").
type FieldError struct {
	Pointer string
	Err     error // one of the sentinels above
	Detail  string
}

func (e *FieldError) Error() string {
	s := "envelope: invalid"
	if e.Err != nil {
		s = e.Err.Error()
	}
	if e.Pointer != "" {
		s += ": " + e.Pointer
	}
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	return s
}

func (e *FieldError) Unwrap() error { return e.Err }

// Event is the canonical envelope. Data is kept as raw JSON so that what a
// producer sent is what a receiver gets.
type Event struct {
	ID        string          `json:"id"`
	Event     string          `json:"event"`
	Timestamp string          `json:"timestamp"`
	Data      json.RawMessage `json:"data"`
}

// NewID returns "evt_" followed by 24 lowercase hex digits (96 random bits).
func NewID() string {
	var b [12]byte
	// crypto/rand.Read never returns an error on supported platforms (Go 1.24+).
	_, _ = rand.Read(b[:])
	var out [28]byte
	copy(out[:], "evt_")
	hex.Encode(out[4:], b[:])
	return string(out[:])
}

// New builds an event of the given type with a fresh id and the current time.
func New(eventType string, data json.RawMessage) Event {
	return Event{ID: NewID(), Event: eventType, Timestamp: FormatTime(time.Now()), Data: data}
}

// FormatTime formats t the way envelopes carry timestamps (UTC, seconds).
func FormatTime(t time.Time) string { return t.UTC().Format(TimeLayout) }

// ValidID reports whether id may be an event id: 1 to 128 characters from
// [A-Za-z0-9_.:-]. Generated ids and typical idempotency keys (UUIDs, "evt-...")
// qualify; anything that would be awkward in a header or key does not.
func ValidID(id string) bool {
	if len(id) == 0 || len(id) > maxIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_', c == '.', c == ':', c == '-':
		default:
			return false
		}
	}
	return true
}

// Validate checks every field of e, returning a *FieldError for the first
// problem.
func (e *Event) Validate() error {
	switch {
	case e.ID == "":
		return &FieldError{Pointer: "/id", Err: ErrMissingField}
	case !ValidID(e.ID):
		return &FieldError{Pointer: "/id", Err: ErrInvalidField, Detail: "want 1-128 characters of [A-Za-z0-9_.:-]"}
	case e.Event == "":
		return &FieldError{Pointer: "/event", Err: ErrMissingField}
	case !utf8.ValidString(e.Event):
		return &FieldError{Pointer: "/event", Err: ErrInvalidField, Detail: "not valid UTF-8"}
	case e.Timestamp == "":
		return &FieldError{Pointer: "/timestamp", Err: ErrMissingField}
	case len(e.Data) == 0:
		return &FieldError{Pointer: "/data", Err: ErrMissingField}
	}
	if _, err := time.Parse(time.RFC3339Nano, e.Timestamp); err != nil {
		return &FieldError{Pointer: "/timestamp", Err: ErrInvalidField, Detail: "want RFC 3339"}
	}
	if d := skipSpace(e.Data); len(d) == 0 || d[0] != '{' {
		return &FieldError{Pointer: "/data", Err: ErrInvalidField, Detail: "want a JSON object"}
	}
	return nil
}

// Encode returns the envelope JSON with the fields in canonical order.
func (e *Event) Encode() ([]byte, error) {
	return e.AppendEncode(nil)
}

// AppendEncode appends the envelope JSON to dst.
func (e *Event) AppendEncode(dst []byte) ([]byte, error) {
	if err := e.Validate(); err != nil {
		return dst, err
	}
	// Surrounding whitespace is dropped so that Encode(Decode(b)) is stable.
	data := trimSpace(e.Data)
	if !json.Valid(data) || !utf8.Valid(data) {
		return dst, &FieldError{Pointer: "/data", Err: ErrMalformed}
	}
	dst = append(dst, `{"id":`...)
	dst, _ = json.Append(dst, e.ID, 0)
	dst = append(dst, `,"event":`...)
	dst, _ = json.Append(dst, e.Event, 0)
	dst = append(dst, `,"timestamp":`...)
	dst, _ = json.Append(dst, e.Timestamp, 0)
	dst = append(dst, `,"data":`...)
	dst = append(dst, data...)
	return append(dst, '}'), nil
}

// Decode parses b strictly: one JSON object and nothing after it, valid
// UTF-8, no unknown or repeated fields, every field present and well typed,
// at most maxSize bytes (DefaultMaxSize when maxSize <= 0). Rejecting repeated
// fields matters because receivers parse the same bytes: with two "id"s, some
// parsers keep the first and others the last. Data aliases b. On error the
// fields read so far are set, for logging.
func Decode(b []byte, maxSize int) (Event, error) {
	if maxSize <= 0 {
		maxSize = DefaultMaxSize
	}
	var e Event
	if len(b) > maxSize {
		return e, &FieldError{Pointer: "", Err: ErrTooLarge, Detail: fmt.Sprintf("%d bytes, limit %d", len(b), maxSize)}
	}
	if !utf8.Valid(b) {
		return e, &FieldError{Pointer: "", Err: ErrMalformed, Detail: "not valid UTF-8"}
	}
	r := skipSpace(b)
	if len(r) == 0 || r[0] != '{' {
		return e, &FieldError{Pointer: "", Err: ErrMalformed, Detail: "want a JSON object"}
	}
	r = skipSpace(r[1:])
	const (
		seenID = 1 << iota
		seenEvent
		seenTimestamp
		seenData
	)
	var seen int
	for len(r) == 0 || r[0] != '}' {
		if len(r) == 0 || r[0] != '"' {
			return e, &FieldError{Pointer: "", Err: ErrMalformed, Detail: "want a field name"}
		}
		var key string
		var err error
		if r, err = json.Parse(r, &key, json.ZeroCopy); err != nil {
			return e, &FieldError{Pointer: "", Err: ErrMalformed, Detail: err.Error()}
		}
		if len(r) == 0 || r[0] != ':' {
			return e, &FieldError{Pointer: "", Err: ErrMalformed, Detail: "want ':' after a field name"}
		}
		r = skipSpace(r[1:])
		var bit int
		var dst *string
		switch key {
		case "id":
			bit, dst = seenID, &e.ID
		case "event":
			bit, dst = seenEvent, &e.Event
		case "timestamp":
			bit, dst = seenTimestamp, &e.Timestamp
		case "data":
			bit = seenData
		default:
			// key aliases b (ZeroCopy); the error must not.
			return e, &FieldError{Pointer: jsonptr.Token(strings.Clone(key)), Err: ErrInvalidField, Detail: "unknown field"}
		}
		if seen&bit != 0 {
			return e, &FieldError{Pointer: "/" + key, Err: ErrInvalidField, Detail: "repeated field"}
		}
		seen |= bit
		if dst != nil {
			if len(r) == 0 || r[0] != '"' {
				return e, &FieldError{Pointer: "/" + key, Err: ErrInvalidField, Detail: "want a string"}
			}
			// Strings are copied (no ZeroCopy) so they stay valid if b is reused.
			if r, err = json.Parse(r, dst, 0); err != nil {
				return e, &FieldError{Pointer: "/" + key, Err: ErrMalformed, Detail: err.Error()}
			}
			if *dst == "" {
				return e, &FieldError{Pointer: "/" + key, Err: ErrInvalidField, Detail: "empty string"}
			}
		} else {
			var d json.RawMessage
			if r, err = json.Parse(r, &d, json.ZeroCopy); err != nil {
				return e, &FieldError{Pointer: "/data", Err: ErrMalformed, Detail: err.Error()}
			}
			e.Data = d
		}
		if len(r) > 0 && r[0] == ',' {
			r = skipSpace(r[1:])
			if len(r) > 0 && r[0] == '}' {
				return e, &FieldError{Pointer: "", Err: ErrMalformed, Detail: "trailing comma"}
			}
			continue
		}
		if len(r) == 0 || r[0] != '}' {
			return e, &FieldError{Pointer: "", Err: ErrMalformed, Detail: "want ',' or '}' after a field"}
		}
	}
	if len(skipSpace(r[1:])) != 0 {
		return e, &FieldError{Pointer: "", Err: ErrMalformed, Detail: "data after the object"}
	}
	for _, f := range [...]struct {
		bit  int
		name string
	}{{seenID, "/id"}, {seenEvent, "/event"}, {seenTimestamp, "/timestamp"}, {seenData, "/data"}} {
		if seen&f.bit == 0 {
			return e, &FieldError{Pointer: f.name, Err: ErrMissingField}
		}
	}
	return e, e.Validate()
}

// skipSpace drops leading JSON whitespace.
func skipSpace(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t' || b[0] == '\n' || b[0] == '\r') {
		b = b[1:]
	}
	return b
}

// trimSpace drops leading and trailing JSON whitespace.
func trimSpace(b []byte) []byte {
	b = skipSpace(b)
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t' || b[len(b)-1] == '\n' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	return b
}
