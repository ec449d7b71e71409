package main

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/hookstream/hookstream/envelope"
)

// eventType is the type every benchmark event has: its schema allows extra
// properties, which carry the sequence number, the publish time and padding.
const eventType = "billing.usage_alert"

// seqBase keeps the sequence number fixed-width (10 digits) so every body
// has the same size; JSON numbers may not have leading zeros.
const seqBase = 1_000_000_000

// payload builds event data whose envelope (the POST body a receiver gets)
// is exactly size bytes.
type payload struct {
	size int
	pad  string
}

func newPayload(size int) (payload, error) {
	p := payload{size: size}
	e := envelope.Event{ID: envelope.NewID(), Event: eventType, Timestamp: envelope.FormatTime(time.Now()), Data: p.data(nil, 0, time.Now().UnixNano())}
	b, err := e.Encode()
	if err != nil {
		return p, fmt.Errorf("payload: %w", err)
	}
	n := size - len(b)
	if n < 0 {
		return p, fmt.Errorf("payload: %d bytes is smaller than the smallest envelope (%d)", size, len(b))
	}
	p.pad = strings.Repeat("x", n)
	return p, nil
}

// data appends the event data for sequence number seq published at sentNs.
func (p payload) data(dst []byte, seq, sentNs int64) []byte {
	dst = append(dst, `{"resource":"api_calls","current":9500,"limit":10000,"percentage":95,"bench_seq":`...)
	dst = strconv.AppendInt(dst, seqBase+seq, 10)
	dst = append(dst, `,"bench_sent_ns":`...)
	dst = strconv.AppendInt(dst, sentNs, 10)
	dst = append(dst, `,"pad":"`...)
	dst = append(dst, p.pad...)
	return append(dst, `"}`...)
}

// envelope appends a whole canonical envelope, as the baseline POSTs it.
func (p payload) envelope(dst []byte, id string, seq, sentNs int64) []byte {
	dst = append(dst, `{"id":"`...)
	dst = append(dst, id...)
	dst = append(dst, `","event":"`+eventType+`","timestamp":"`...)
	dst = time.Unix(0, sentNs).UTC().AppendFormat(dst, envelope.TimeLayout)
	dst = append(dst, `","data":`...)
	dst = p.data(dst, seq, sentNs)
	return append(dst, '}')
}

var (
	seqKey  = []byte(`"bench_seq":`)
	sentKey = []byte(`"bench_sent_ns":`)
)

// parseBody reads the sequence number and publish time back from a body.
func parseBody(b []byte) (seq, sentNs int64, ok bool) {
	seq, ok = intAfter(b, seqKey)
	if !ok {
		return 0, 0, false
	}
	sentNs, ok = intAfter(b, sentKey)
	return seq - seqBase, sentNs, ok
}

func intAfter(b, key []byte) (int64, bool) {
	i := bytes.Index(b, key)
	if i < 0 {
		return 0, false
	}
	b = b[i+len(key):]
	var n int64
	j := 0
	for ; j < len(b) && b[j] >= '0' && b[j] <= '9'; j++ {
		n = n*10 + int64(b[j]-'0')
	}
	return n, j > 0
}
