package deliverer

import "github.com/twmb/franz-go/pkg/kgo"

// itemOverhead approximates what holding a record costs beyond its key,
// value and headers: the kgo.Record, the item, its parsed routing strings.
const itemOverhead = 512

// itemSize is what holding r in memory costs, roughly: what the
// buffered-bytes bounds count.
func itemSize(r *kgo.Record) int64 {
	n := len(r.Key) + len(r.Value) + itemOverhead
	for _, h := range r.Headers {
		n += len(h.Key) + len(h.Value) + 32
	}
	return int64(n)
}

// detach copies r out of its fetch: a fetched record's bytes, and the
// record itself, share the whole decompressed batch's buffers, so one
// record waiting in a lane kept up to a megabyte alive, uncounted by the
// buffered-bytes bound (a heap profile under a backlog showed most of the
// deliverer's memory there). One allocation holds all of r's bytes.
func detach(r *kgo.Record) *kgo.Record {
	n := len(r.Key) + len(r.Value)
	for _, h := range r.Headers {
		n += len(h.Value)
	}
	buf := make([]byte, 0, n)
	take := func(b []byte) []byte {
		if b == nil {
			return nil
		}
		start := len(buf)
		buf = append(buf, b...)
		return buf[start:len(buf):len(buf)]
	}
	c := *r
	c.Key, c.Value = take(r.Key), take(r.Value)
	c.Headers = make([]kgo.RecordHeader, len(r.Headers))
	for i, h := range r.Headers {
		c.Headers[i] = kgo.RecordHeader{Key: h.Key, Value: take(h.Value)}
	}
	return &c
}
