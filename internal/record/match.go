package record

import (
	"fmt"
	"time"

	"github.com/segmentio/encoding/json"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Match is fanout's record of one accepted event on the matches topic: the
// endpoints it matched, written in the transaction that writes their
// delivery records, so the delivery log never disagrees with what was
// delivered. An event that matched nothing has a Match too.
type Match struct {
	Tenant    string `json:"tenant"`
	EventID   string `json:"event_id"`
	EventType string `json:"event_type"`
	// Endpoints got a delivery record each; Disabled matched the type but
	// were disabled, so got none.
	Endpoints []string `json:"endpoints"`
	Disabled  []string `json:"disabled,omitempty"`
	// Topic, Partition and Offset locate the event in the events topic:
	// its bytes are read back from there, never copied.
	Topic     string    `json:"topic"`
	Partition int32     `json:"partition"`
	Offset    int64     `json:"offset"`
	At        time.Time `json:"at"` // the event record's timestamp
}

// Record encodes m for topic, keyed by tenant so one tenant's matches stay
// in order.
func (m *Match) Record(topic string) (*kgo.Record, error) {
	v, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("record: match: %w", err)
	}
	return &kgo.Record{Topic: topic, Key: []byte(m.Tenant), Value: v,
		Headers: []kgo.RecordHeader{{Key: HeaderTenant, Value: []byte(m.Tenant)}, {Key: HeaderEventID, Value: []byte(m.EventID)}}}, nil
}

// ParseMatch decodes a record of the matches topic.
func ParseMatch(r *kgo.Record) (Match, error) {
	var m Match
	if err := json.Unmarshal(r.Value, &m); err != nil {
		return m, fmt.Errorf("%w: match: %w", ErrMalformed, err)
	}
	if m.Tenant == "" || m.EventID == "" {
		return m, fmt.Errorf("%w: match without tenant or event id", ErrMalformed)
	}
	return m, nil
}
