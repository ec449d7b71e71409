package deliverylog

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/segmentio/encoding/json"

	"github.com/hookstream/hookstream/deliverer"
)

// An attempt's summary is all the index keeps of it: what lists show and
// filters test. The heavy fields (request headers, response body, error
// text) stay in the attempts topic and are read back by the attempt's
// coordinates when one attempt is shown in full (WithRecords).
//
// The summary is its fields joined by sep, not JSON: no field names, no
// quoting, and the tenant is the key's. None of the fields can hold sep
// (ids, type names, enum values and numbers).
const sep = "\x1f"

// summaryFields is the field count of an encoded summary.
const summaryFields = 11

func encodeSummary(a *deliverer.Attempt) string {
	trunc := "0"
	if a.ResponseTruncated {
		trunc = "1"
	}
	trigger := a.Trigger
	if trigger == "scheduled" {
		trigger = "" // the common case costs nothing
	}
	return strings.Join([]string{
		a.EventID, a.EventType, a.EndpointID, strconv.Itoa(a.Attempt), trigger, a.Outcome,
		strconv.Itoa(a.Status), a.ErrorClass, strconv.FormatInt(a.LatencyMS, 10), trunc,
		strconv.FormatInt(a.At.UnixNano(), 36),
	}, sep)
}

// errSummary: a stored value is not a summary this code wrote.
var errSummary = errors.New("deliverylog: malformed summary")

func decodeSummary(tenant, v string, a *deliverer.Attempt) error {
	f := strings.Split(v, sep)
	if len(f) != summaryFields {
		return errSummary
	}
	n, err1 := strconv.Atoi(f[3])
	status, err2 := strconv.Atoi(f[6])
	lat, err3 := strconv.ParseInt(f[8], 10, 64)
	ns, err4 := strconv.ParseInt(f[10], 36, 64)
	if err := errors.Join(err1, err2, err3, err4); err != nil {
		return fmt.Errorf("%w: %w", errSummary, err)
	}
	trigger := f[4]
	if trigger == "" {
		trigger = "scheduled"
	}
	*a = deliverer.Attempt{
		Tenant: tenant, EventID: f[0], EventType: f[1], EndpointID: f[2], Attempt: n, Trigger: trigger,
		Outcome: f[5], Status: status, ErrorClass: f[7], LatencyMS: lat, ResponseTruncated: f[9] == "1",
		At: time.Unix(0, ns),
	}
	return nil
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

// full reads the attempt at m's coordinates back from Kafka into e. A
// record past the topic's retention leaves the summary as it is; a record
// that is not the indexed attempt is an error, never shown.
func (ix *Index) full(ctx context.Context, m string, e *Entry) error {
	part, err1 := strconv.ParseUint(m[12:16], 16, 16)
	off, err2 := strconv.ParseInt(m[16:28], 16, 64)
	if err := errors.Join(err1, err2); err != nil {
		return fmt.Errorf("deliverylog: attempt %s: %w", e.ID, err)
	}
	v, err := ix.records.Read(ctx, Location{Topic: ix.attemptsTopic, Partition: int32(part), Offset: off})
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
	e.Error, e.ResponseBody, e.RequestHeaders = a.Error, a.ResponseBody, a.RequestHeaders
	return nil
}

// encode writes the delivery's summary compactly, its rank first so that
// attemptScript compares ranks without decoding the rest.
func (l lastAttempt) encode() string {
	next := ""
	if !l.Next.IsZero() {
		next = strconv.FormatInt(l.Next.UnixMilli(), 36)
	}
	return strings.Join([]string{strconv.FormatInt(l.Rank, 10), strconv.Itoa(l.Attempt), strconv.Itoa(l.Status), l.Outcome,
		strconv.FormatInt(l.At.UnixNano(), 36), next, l.Trigger}, ",")
}

// parseLast reads a delivery's summary, compact or (as written before)
// JSON.
func parseLast(v string) (lastAttempt, bool) {
	var l lastAttempt
	if strings.HasPrefix(v, "{") {
		return l, json.Unmarshal([]byte(v), &l) == nil
	}
	f := strings.Split(v, ",")
	if len(f) != 7 {
		return l, false
	}
	rank, err1 := strconv.ParseInt(f[0], 10, 64)
	n, err2 := strconv.Atoi(f[1])
	status, err3 := strconv.Atoi(f[2])
	ns, err4 := strconv.ParseInt(f[4], 36, 64)
	if errors.Join(err1, err2, err3, err4) != nil {
		return l, false
	}
	l = lastAttempt{Rank: rank, Attempt: n, Status: status, Outcome: f[3], At: time.Unix(0, ns).UTC(), Trigger: f[6]}
	if f[5] != "" {
		ms, err := strconv.ParseInt(f[5], 36, 64)
		if err != nil {
			return l, false
		}
		l.Next = time.UnixMilli(ms).UTC()
	}
	return l, true
}
