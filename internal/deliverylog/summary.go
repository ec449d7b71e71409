package deliverylog

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/segmentio/encoding/json"

	"github.com/hookstream/hookstream/deliverer"
	"github.com/hookstream/hookstream/internal/record"
)

// An attempt's summary is all the index keeps of it: what lists show and
// filters test, as one entry of its endpoint's stream. The heavy fields
// (request headers, response body, error text) stay in the attempts topic
// and are read back by the attempt's coordinates when one attempt is shown
// in full (WithRecords).
//
// An entry has one field, "v": the summary's fields joined by sep, not
// one stream field each, which would cost Redis two bytes of framing per
// field per entry and the script an argument each. None of the fields can
// hold sep (ids, type names, enum values and numbers); the tenant and
// endpoint are the key's.
const sep = "\x1f"

// summaryFields is the field count of a stored summary: appendSummary's
// and the time delta the indexer may append.
const summaryFields = 12

// shortNames are one-letter codes for the outcomes and error classes
// (sender.Class) that nearly every attempt repeats; codes are upper case,
// the values they stand for lower case, so a value without a code is
// stored as it is and read back unchanged.
var shortNames = map[string]string{
	"delivered": "D", "failed": "F", "deleted": "X", "gone": "G", "refused": "U",
	"http_status": "H", "timeout": "T", "dns": "N", "connection_refused": "R", "connection_reset": "S",
	"tls": "L", "refused_destination": "B", "invalid_request": "I", "redirect": "E", "canceled": "C",
	"connection": "K",
}

var longNames = func() map[string]string {
	m := make(map[string]string, len(shortNames))
	for long, short := range shortNames {
		m[short] = long
	}
	return m
}()

func short(v string) string { return cmp.Or(shortNames[v], v) }
func long(v string) string  { return cmp.Or(longNames[v], v) }

// appendSummary appends a's stream value to b (the offset in base 36) but
// its last field, the attempt's millisecond less its entry id's, which the
// indexer appends when it is not 0, that is when the id had to move past a
// clock behind. The index keeps times to the millisecond.
func appendSummary(b []byte, a *deliverer.Attempt, partition int32, offset int64) []byte {
	trigger := a.Trigger
	if trigger == record.TriggerScheduled {
		trigger = "" // the common case costs nothing
	}
	b = append(append(b, a.EventID...), sep...)
	b = append(append(b, a.EventType...), sep...)
	b = append(strconv.AppendInt(b, int64(a.Attempt), 10), sep...)
	b = append(append(b, trigger...), sep...)
	b = append(append(b, short(a.Outcome)...), sep...)
	b = append(strconv.AppendInt(b, int64(a.Status), 10), sep...)
	b = append(append(b, short(a.ErrorClass)...), sep...)
	b = append(strconv.AppendInt(b, a.LatencyMS, 10), sep...)
	if a.ResponseTruncated {
		b = append(b, '1')
	}
	b = append(strconv.AppendInt(append(b, sep...), int64(partition), 10), sep...)
	return strconv.AppendInt(b, offset, 36)
}

// errSummary: a stored entry is not a summary this code wrote.
var errSummary = errors.New("deliverylog: malformed summary")

// decodeSummary reads stream entry x of the tenant's endpoint into a, and
// the attempt's coordinates in the attempts topic.
func decodeSummary(tenant, endpoint string, x redis.XMessage, a *deliverer.Attempt) (partition int32, offset int64, err error) {
	ms, _, ok := parseID(x.ID)
	v, _ := x.Values["v"].(string)
	f := strings.Split(v, sep)
	if len(f) == summaryFields-1 {
		f = append(f, "0")
	}
	if !ok || len(f) != summaryFields {
		return 0, 0, fmt.Errorf("%w: entry %s", errSummary, x.ID)
	}
	n, err1 := strconv.Atoi(f[2])
	status, err2 := strconv.Atoi(f[5])
	lat, err3 := strconv.ParseInt(f[7], 10, 64)
	p, err4 := strconv.ParseInt(f[9], 10, 32)
	off, err5 := strconv.ParseInt(f[10], 36, 64)
	delta, err6 := strconv.ParseInt(f[11], 10, 64)
	if err := errors.Join(err1, err2, err3, err4, err5, err6); err != nil {
		return 0, 0, fmt.Errorf("%w: %w", errSummary, err)
	}
	trigger := f[3]
	if trigger == "" {
		trigger = record.TriggerScheduled
	}
	*a = deliverer.Attempt{
		Tenant: tenant, EventID: f[0], EventType: f[1], EndpointID: endpoint, Attempt: n, Trigger: trigger,
		Outcome: long(f[4]), Status: status, ErrorClass: long(f[6]), LatencyMS: lat, ResponseTruncated: f[8] == "1",
		At: time.UnixMilli(int64(ms) + delta),
	}
	return int32(p), off, nil
}

// RecordReader reads one Kafka record's value by its location
// (*Reader).
type RecordReader interface {
	Read(ctx context.Context, loc Location) ([]byte, error)
}

// WithRecords lets Attempt fill in the heavy fields of an attempt from its
// record in topic (the attempts topic), read by rd. Without it Attempt
// returns the summary alone.
func WithRecords(rd RecordReader, topic string) IndexOption {
	return func(ix *Index) { ix.records, ix.attemptsTopic = rd, topic }
}

// full reads the attempt at its coordinates back from Kafka into e. A
// record past the topic's retention leaves the summary as it is; a record
// that is not the indexed attempt is an error, never shown.
func (ix *Index) full(ctx context.Context, part int32, off int64, e *Entry) error {
	v, err := ix.records.Read(ctx, Location{Topic: ix.attemptsTopic, Partition: part, Offset: off})
	if errors.Is(err, ErrGone) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("deliverylog: attempt %s: %w", e.ID, err)
	}
	var a deliverer.Attempt
	if err := json.Unmarshal(v, &a); err != nil {
		return fmt.Errorf("deliverylog: attempt %s: %w", e.ID, err)
	}
	if a.Tenant != e.Tenant || a.EventID != e.EventID || a.EndpointID != e.EndpointID || a.Attempt != e.Attempt.Attempt {
		return fmt.Errorf("deliverylog: attempt %s: the record at its coordinates is another attempt", e.ID)
	}
	e.Error, e.ResponseBody, e.RequestHeaders, e.At = a.Error, a.ResponseBody, a.RequestHeaders, a.At
	return nil
}

// A delivery's field "a:<endpoint>" of its event's hash holds the
// summary of its latest attempt, with that attempt's ref, then the refs
// of its other attempts: "<ref>,<attempt>,<status>,<outcome>[,<trigger>];<ref> ...".
// A ref is its attempt's stream id in hex, "-<seq>" left out when the
// sequence is 0, as it nearly always is. attemptsScript ranks summaries
// by their ref's millisecond and attempt number, so their place is fixed.

// append appends the delivery's summary but its ref, which goes first.
// A scheduled attempt's trigger is left out.
func (l lastAttempt) append(b []byte) []byte {
	b = append(strconv.AppendInt(b, int64(l.Attempt), 10), ',')
	b = append(strconv.AppendInt(b, int64(l.Status), 10), ',')
	b = append(b, short(l.Outcome)...)
	if l.Trigger != "" {
		b = append(append(b, ','), l.Trigger...)
	}
	return b
}

// parseDelivery reads a delivery's field: its latest attempt and the refs
// of all its attempts. The attempt's At is its entry id's millisecond:
// its own, or a little later when the id had to move past a clock behind.
func parseDelivery(ep, v string) (lastAttempt, []ref, bool) {
	var l lastAttempt
	sum, others, _ := strings.Cut(v, ";")
	f := strings.Split(sum, ",")
	if len(f) == 4 {
		f = append(f, "")
	}
	if len(f) != 5 {
		return l, nil, false
	}
	r, ok := parseRef(ep, f[0])
	n, err1 := strconv.Atoi(f[1])
	status, err2 := strconv.Atoi(f[2])
	if !ok || err1 != nil || err2 != nil {
		return l, nil, false
	}
	ms, _, _ := parseID(r.id)
	l = lastAttempt{Attempt: n, Status: status, Outcome: long(f[3]), At: time.UnixMilli(int64(ms)).UTC(), Trigger: f[4]}
	refs := []ref{r}
	for _, s := range strings.Fields(others) {
		if r, ok := parseRef(ep, s); ok {
			refs = append(refs, r)
		}
	}
	return l, refs, true
}
