package api

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/segmentio/encoding/json"
	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/hookstream/hookstream/envelope"
	"github.com/hookstream/hookstream/internal/jsonptr"
	"github.com/hookstream/hookstream/producer"
	"github.com/hookstream/hookstream/schemas"
)

// Publisher is what event ingest needs from the producer library: validate
// every event, produce all or nothing of a valid batch, and return once
// Kafka acknowledged each one. *producer.Producer implements it; its errors
// (producer.BatchError, ErrRejected, ErrOutcomeUnknown, ...) decide the
// status.
type Publisher interface {
	PublishBatch(ctx context.Context, tenant string, events []producer.Event) ([]string, error)
}

// MaxBatch is the most events one POST /v1/events may carry.
const MaxBatch = 500

// MaxDepth is how deeply a POST /v1/events body may nest arrays and
// objects. The JSON parser recurses per level, so a few MiB of "[" would
// exhaust its stack and kill the process; receivers' parsers have limits
// too (PHP's json_decode: 512).
const MaxDepth = 128

// DefaultBackendTimeout bounds how long a request waits for Kafka or Redis.
const DefaultBackendTimeout = 10 * time.Second

// WithBackendTimeout bounds how long POST /v1/events waits for Kafka, and an
// endpoint request for the store, before answering 503 (default
// DefaultBackendTimeout). Give the Kafka client
// producer.ClientOpts with the same duration, so that the client gives up on
// the events when the API does instead of producing them later; what a 503
// still leaves open is producer.ErrOutcomeUnknown, which the answer names.
func WithBackendTimeout(d time.Duration) Option { return func(c *cfg) { c.backendTimeout = d } }

// eventIn is one event of a POST /v1/events body.
type eventIn struct {
	event  string
	data   json.RawMessage
	id     string
	key    string
	tenant string
}

// reqError is a rejected request, written by writeError.
type reqError struct {
	status            int
	code, field, text string
}

func (s *Server) publishEvents(w http.ResponseWriter, r *http.Request) {
	tokenTenant, ok := s.authenticate(w, r)
	if !ok {
		return
	}
	if s.publisher == nil {
		writeError(w, http.StatusServiceUnavailable, CodeUnavailable, "", "event ingest is not configured")
		return
	}
	body, rerr := s.readBody(w, r)
	if rerr != nil {
		writeError(w, rerr.status, rerr.code, rerr.field, "%s", rerr.text)
		return
	}
	items, batch, rerr := parseEvents(body)
	if rerr != nil {
		writeError(w, rerr.status, rerr.code, rerr.field, "%s", rerr.text)
		return
	}
	// One tenant per request: the token's, or the one an admin names.
	named := ""
	for i, it := range items {
		if it.tenant == "" {
			continue
		}
		if named != "" && it.tenant != named {
			writeError(w, http.StatusBadRequest, CodeInvalid, at(batch, i)+"/tenant",
				"every event of a batch must name the same tenant (%q, then %q)", named, it.tenant)
			return
		}
		named = it.tenant
	}
	tenant, ok := s.tenantFor(w, r, tokenTenant, named)
	if !ok {
		return
	}
	events := make([]producer.Event, len(items))
	for i, it := range items {
		events[i] = producer.Event{Type: it.event, Data: it.data, ID: it.id, Key: it.key}
	}

	timeout := s.backendTimeout
	if timeout <= 0 {
		timeout = DefaultBackendTimeout
	}
	ctx, cancel := context.WithTimeout(r.Context(), timeout)
	defer cancel()
	ids, err := s.publisher.PublishBatch(ctx, tenant, events)
	if err != nil {
		rerr := publishError(err, batch)
		switch rerr.status {
		case http.StatusServiceUnavailable:
			s.log.Warn("publish events", "tenant", tenant, "events", len(events), "err", err)
		case http.StatusInternalServerError:
			s.log.Error("publish events: Kafka refused them", "tenant", tenant, "events", len(events), "err", err)
		}
		writeError(w, rerr.status, rerr.code, rerr.field, "%s", rerr.text)
		return
	}
	if batch {
		writeJSON(w, http.StatusAccepted, struct {
			IDs []string `json:"ids"`
		}{ids})
		return
	}
	writeJSON(w, http.StatusAccepted, struct {
		ID string `json:"id"`
	}{ids[0]})
}

// readBody reads the whole body within the configured limit.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request) ([]byte, *reqError) {
	var buf bytes.Buffer
	if n := r.ContentLength; n > 0 && n <= s.maxBody {
		buf.Grow(int(n))
	}
	_, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, s.maxBody))
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		return nil, &reqError{http.StatusRequestEntityTooLarge, CodeTooLarge, "",
			fmt.Sprintf("request body over %d bytes", s.maxBody)}
	case err != nil && !errors.Is(err, io.EOF):
		return nil, &reqError{http.StatusBadRequest, CodeMalformed, "", "reading body: " + err.Error()}
	}
	return buf.Bytes(), nil
}

// parseEvents reads a single event object or an array of them. batch
// reports the array form, whose field pointers start with the index.
func parseEvents(body []byte) (items []eventIn, batch bool, rerr *reqError) {
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	if nestedTooDeep(body, MaxDepth) {
		return nil, false, &reqError{http.StatusBadRequest, CodeMalformed, "", fmt.Sprintf("JSON nested more than %d levels deep", MaxDepth)}
	}
	if !json.Valid(body) {
		return nil, false, &reqError{http.StatusBadRequest, CodeMalformed, "", "body is not valid JSON"}
	}
	// Receivers get data byte for byte, and JSON parsers disagree on which
	// of two equal keys wins: data validated with the last value could
	// reach a receiver that reads the first.
	if ptr, ok := envelope.RepeatedKey(body); ok {
		return nil, false, &reqError{http.StatusBadRequest, CodeMalformed, ptr, "repeated key; each key may appear once per object"}
	}
	if len(trimmed) > 0 && trimmed[0] == '{' {
		it, rerr := parseEvent(body, "")
		if rerr != nil {
			return nil, false, rerr
		}
		return []eventIn{it}, false, nil
	}
	if len(trimmed) == 0 || trimmed[0] != '[' {
		return nil, false, &reqError{http.StatusBadRequest, CodeMalformed, "", "want an event object or an array of them"}
	}
	var raws []json.RawMessage
	if _, err := json.Parse(body, &raws, json.ZeroCopy); err != nil {
		return nil, true, &reqError{http.StatusBadRequest, CodeMalformed, "", err.Error()}
	}
	switch {
	case len(raws) == 0:
		return nil, true, &reqError{http.StatusBadRequest, CodeInvalid, "", "empty batch"}
	case len(raws) > MaxBatch:
		return nil, true, &reqError{http.StatusRequestEntityTooLarge, CodeTooLarge, "",
			fmt.Sprintf("batch of %d events, at most %d", len(raws), MaxBatch)}
	}
	items = make([]eventIn, len(raws))
	for i, raw := range raws {
		if items[i], rerr = parseEvent(raw, at(true, i)); rerr != nil {
			return nil, true, rerr
		}
	}
	return items, true, nil
}

// parseEvent reads one {"event", "data", "id"?, "key"?, "tenant"?} object;
// ptr is its JSON pointer in the body.
func parseEvent(raw []byte, ptr string) (eventIn, *reqError) {
	var it eventIn
	var fields map[string]json.RawMessage
	if _, err := json.Parse(raw, &fields, json.ZeroCopy); err != nil || fields == nil {
		return it, &reqError{http.StatusBadRequest, CodeMalformed, ptr, "want an event object"}
	}
	for name, v := range fields {
		var dst *string
		switch name {
		case "event":
			dst = &it.event
		case "id":
			dst = &it.id
		case "key":
			dst = &it.key
		case "tenant":
			dst = &it.tenant
		case "data":
			it.data = v
			continue
		default:
			return it, &reqError{http.StatusBadRequest, CodeInvalid, ptr + jsonptr.Token(name),
				"unknown field; an event has event, data and optionally id, key, tenant"}
		}
		if len(v) == 0 || v[0] != '"' || json.Unmarshal(v, dst) != nil {
			return it, &reqError{http.StatusBadRequest, CodeInvalid, ptr + "/" + name, "want a string"}
		}
		if name == "id" && it.id == "" {
			return it, &reqError{http.StatusUnprocessableEntity, CodeInvalid, ptr + "/id", "empty id; leave \"id\" out to have one generated"}
		}
	}
	switch {
	case it.event == "":
		return it, &reqError{http.StatusBadRequest, CodeInvalid, ptr + "/event", "required: the event type"}
	case it.data == nil:
		return it, &reqError{http.StatusBadRequest, CodeInvalid, ptr + "/data", "required: the data object"}
	case schemas.Operational(it.event):
		return it, &reqError{http.StatusUnprocessableEntity, CodeInvalid, ptr + "/event", fmt.Sprintf("%q is emitted by Hookstream only", it.event)}
	}
	return it, nil
}

// nestedTooDeep reports whether b opens more than limit arrays or objects at
// once. It counts brackets outside strings, so b need not be valid JSON.
func nestedTooDeep(b []byte, limit int) bool {
	depth, inString, escaped := 0, false, false
	for _, c := range b {
		switch {
		case escaped:
			escaped = false
		case inString && c == '\\':
			escaped = true
		case c == '"':
			inString = !inString
		case inString:
		case c == '{' || c == '[':
			if depth++; depth > limit {
				return true
			}
		case c == '}' || c == ']':
			depth--
		}
	}
	return false
}

// at is the JSON pointer of event i: "" for a single event, "/i" in a batch.
func at(batch bool, i int) string {
	if !batch {
		return ""
	}
	return "/" + strconv.Itoa(i)
}

// publishError maps a Publisher error to the response: validation errors
// name the field, anything else means Kafka did not take the events.
func publishError(err error, batch bool) reqError {
	ptr := ""
	var be *producer.BatchError
	if errors.As(err, &be) {
		ptr = at(batch, be.Index)
	}
	var ve *schemas.ValidationError
	var fe *envelope.FieldError
	switch {
	case errors.Is(err, schemas.ErrUnknownType):
		return reqError{http.StatusUnprocessableEntity, CodeUnknownType, ptr + "/event", "unknown event type; GET /v1/event-types lists them"}
	case errors.As(err, &ve):
		return reqError{http.StatusUnprocessableEntity, CodeSchemaViolation, ptr + "/data" + ve.Pointer, ve.Message}
	case errors.Is(err, schemas.ErrInvalidJSON):
		return reqError{http.StatusBadRequest, CodeMalformed, ptr + "/data", "data is not valid JSON"}
	case errors.Is(err, producer.ErrInvalidTenant):
		return reqError{http.StatusBadRequest, CodeInvalid, "/tenant", "want 1-128 characters of [A-Za-z0-9_.:-]"}
	case errors.Is(err, envelope.ErrTooLarge):
		return reqError{http.StatusRequestEntityTooLarge, CodeTooLarge, ptr + "/data", "event too large: " + detail(err)}
	case errors.As(err, &fe):
		return reqError{http.StatusBadRequest, CodeInvalid, ptr + fe.Pointer, detail(err)}
	case errors.Is(err, context.Canceled):
		// The client went away; nobody reads this answer.
		return reqError{http.StatusServiceUnavailable, CodeUnavailable, "", "request canceled"}
	case errors.Is(err, kerr.MessageTooLarge), errors.Is(err, kerr.RecordListTooLarge):
		return reqError{http.StatusRequestEntityTooLarge, CodeTooLarge, "", "Kafka refused the event as larger than the topic allows; nothing was accepted"}
	case errors.Is(err, producer.ErrRejected):
		return reqError{http.StatusInternalServerError, CodeRejected, "",
			"Kafka refused the events (" + kafkaCode(err) + "); nothing was accepted, and a retry fails the same way until the service's Kafka access is fixed"}
	case errors.Is(err, producer.ErrOutcomeUnknown):
		msg := "Kafka did not confirm the event in time and may still have accepted it; retry with the same id (set \"id\") so that it is delivered once"
		if batch {
			msg = "Kafka did not confirm the batch in time and may still have accepted it, as a whole; retry with the same ids (set \"id\") so that they are delivered once"
		}
		return reqError{http.StatusServiceUnavailable, CodeUnavailable, "", msg}
	}
	msg := "Kafka did not acknowledge the event; nothing was accepted, retry later"
	if batch {
		msg = "Kafka did not acknowledge every event; nothing of the batch was accepted, retry later"
	}
	return reqError{http.StatusServiceUnavailable, CodeUnavailable, "", msg}
}

// kafkaCode is the name of the Kafka error code in err, such as
// TOPIC_AUTHORIZATION_FAILED.
func kafkaCode(err error) string {
	var ke *kerr.Error
	if errors.As(err, &ke) {
		return ke.Message
	}
	return "unknown error"
}

func detail(err error) string {
	var fe *envelope.FieldError
	if errors.As(err, &fe) && fe.Detail != "" {
		return fe.Detail
	}
	return err.Error()
}

// eventType is one entry of GET /v1/event-types.
type eventType struct {
	Name        string          `json:"name"`
	Description string          `json:"description"`
	Schema      json.RawMessage `json:"schema"`
	Example     json.RawMessage `json:"example"`
	Envelope    json.RawMessage `json:"envelope"`
}

// eventTypes serves the catalog. It is public: it documents what may be
// published and what receivers get, and holds no tenant data.
func (s *Server) eventTypes(w http.ResponseWriter, _ *http.Request) {
	if s.catalog == nil {
		writeError(w, http.StatusServiceUnavailable, CodeUnavailable, "", "no event catalog configured")
		return
	}
	types := s.catalog.Types()
	out := struct {
		Data []eventType `json:"data"`
	}{make([]eventType, len(types))}
	for i, t := range types {
		out.Data[i] = eventType{Name: t.Name, Description: t.Description, Schema: t.Schema, Example: t.Example, Envelope: t.Envelope}
	}
	writeJSON(w, http.StatusOK, &out)
}
