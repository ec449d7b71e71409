package deliverer

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/segmentio/encoding/json"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hookstream/hookstream/internal/record"
)

// HeaderMarker marks a lane marker in the retries topic: "park" (the lane's
// records in retries from an offset on wait, see Parking in the package
// doc) or "done" (nothing of the lane is left there). Every other record of
// the retries topic is a parked delivery record.
const HeaderMarker = "hookstream-marker"

const (
	markerPark = "park"
	markerDone = "done"
)

// marker is the durable state of a parked lane: which retries records are
// still to be delivered, and when.
type marker struct {
	kind     string
	endpoint string
	// ID tells the lane's newest marker from older ones read back.
	ID string `json:"id"`
	// From is the lowest retries offset of the lane still to be delivered:
	// every delivery record of the endpoint at or above it is, unless
	// Records says it was delivered. -1: the marker's own offset (a lane
	// parked from memory, whose records are produced after its marker).
	From int64 `json:"from"`
	// Until is when delivering may resume (unix ms): the wait of the
	// lane's first record.
	Until int64 `json:"until"`
	// FailingSince carries the endpoint's run of failures (unix ms; 0:
	// none) for WithDisableAfter.
	FailingSince int64 `json:"failing_since,omitempty"`
	// Records holds what the records at or above From do not say
	// themselves: attempts made since they were written, and which were
	// delivered already (endpoints with ordering "none" finish out of
	// order).
	Records []recordState `json:"records,omitempty"`
}

type recordState struct {
	Offset    int64 `json:"offset"`
	Attempts  int   `json:"attempts,omitempty"`
	FirstTry  int64 `json:"first_try,omitempty"`
	Delivered bool  `json:"delivered,omitempty"`
}

func newMarkerID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// record encodes m for the retries topic, keyed by endpoint like the lane's
// delivery records.
func (m *marker) record(topic string) *kgo.Record {
	v, _ := json.Marshal(m) // plain fields: cannot fail
	return &kgo.Record{
		Topic: topic,
		Key:   []byte(m.endpoint),
		Value: v,
		Headers: []kgo.RecordHeader{
			{Key: HeaderMarker, Value: []byte(m.kind)},
			{Key: record.HeaderEndpoint, Value: []byte(m.endpoint)},
		},
	}
}

// parseMarker decodes a marker; ok is false for a delivery record.
func parseMarker(r *kgo.Record) (m *marker, ok bool, err error) {
	kind := record.Header(r, HeaderMarker)
	if kind == nil {
		return nil, false, nil
	}
	m = &marker{kind: string(kind), endpoint: string(record.Header(r, record.HeaderEndpoint))}
	switch {
	case m.kind != markerPark && m.kind != markerDone:
		return nil, true, fmt.Errorf("%w: unknown marker kind %q", record.ErrMalformed, kind)
	case m.endpoint == "":
		return nil, true, fmt.Errorf("%w: marker without %s header", record.ErrMalformed, record.HeaderEndpoint)
	}
	if err := json.Unmarshal(r.Value, m); err != nil {
		return nil, true, fmt.Errorf("%w: marker value: %v", record.ErrMalformed, err)
	}
	if m.From < 0 {
		m.From = r.Offset
	}
	return m, true, nil
}

func unixMilli(ms int64) time.Time {
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms)
}

func milli(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}
