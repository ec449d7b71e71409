// Package envelope provides the canonical Hookstream event: the exact JSON
// object {"id","event","timestamp","data"} that producers publish to Kafka and
// receivers get as the POST body, byte for byte.
package envelope

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

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
	if e.Detail == "" {
		return fmt.Sprintf("%v: %s", e.Err, e.Pointer)
	}
	return fmt.Sprintf("%v: %s: %s", e.Err, e.Pointer, e.Detail)
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
	case e.Timestamp == "":
		return &FieldError{Pointer: "/timestamp", Err: ErrMissingField}
	case len(e.Data) == 0:
		return &FieldError{Pointer: "/data", Err: ErrMissingField}
	}
	if _, err := time.Parse(time.RFC3339Nano, e.Timestamp); err != nil {
		return &FieldError{Pointer: "/timestamp", Err: ErrInvalidField, Detail: "want RFC 3339"}
	}
	if d := bytes.TrimLeft(e.Data, " \t\r\n"); len(d) == 0 || d[0] != '{' {
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
	data := e.Data
	if !json.Valid(data) {
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

// Decode parses b strictly: no unknown fields, every field present
// and well typed, at most maxSize bytes (DefaultMaxSize when maxSize <= 0).
// Data aliases b.
func Decode(b []byte, maxSize int) (Event, error) {
	if maxSize <= 0 {
		maxSize = DefaultMaxSize
	}
	var e Event
	if len(b) > maxSize {
		return e, &FieldError{Pointer: "", Err: ErrTooLarge, Detail: fmt.Sprintf("%d bytes, limit %d", len(b), maxSize)}
	}
	var raw map[string]json.RawMessage
	if _, err := json.Parse(b, &raw, json.ZeroCopy); err != nil {
		return e, &FieldError{Pointer: "", Err: ErrMalformed, Detail: err.Error()}
	}
	if raw == nil {
		return e, &FieldError{Pointer: "", Err: ErrMalformed, Detail: "want a JSON object"}
	}
	for k := range raw {
		switch k {
		case "id", "event", "timestamp", "data":
		default:
			return e, &FieldError{Pointer: "/" + k, Err: ErrInvalidField, Detail: "unknown field"}
		}
	}
	for _, f := range [...]struct {
		name string
		dst  *string
	}{{"id", &e.ID}, {"event", &e.Event}, {"timestamp", &e.Timestamp}} {
		v, ok := raw[f.name]
		if !ok {
			return e, &FieldError{Pointer: "/" + f.name, Err: ErrMissingField}
		}
		if err := json.Unmarshal(v, f.dst); err != nil || len(v) == 0 || v[0] != '"' {
			return e, &FieldError{Pointer: "/" + f.name, Err: ErrInvalidField, Detail: "want a string"}
		}
	}
	d, ok := raw["data"]
	if !ok {
		return e, &FieldError{Pointer: "/data", Err: ErrMissingField}
	}
	e.Data = d
	return e, e.Validate()
}
