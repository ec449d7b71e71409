package deliverer

import (
	"bytes"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
)

// TestDetach: the copy shares no bytes with the fetched record, so the
// fetch's buffers can be freed while the copy waits in a lane.
func TestDetach(t *testing.T) {
	batch := []byte("keyvalueh1h2")
	r := &kgo.Record{Key: batch[0:3], Value: batch[3:8], Offset: 7, Partition: 2, Topic: "t",
		Headers: []kgo.RecordHeader{{Key: "a", Value: batch[8:10]}, {Key: "b", Value: batch[10:12]}, {Key: "c"}}}
	c := detach(r)
	for i := range batch {
		batch[i] = 'x'
	}
	if string(c.Key) != "key" || string(c.Value) != "value" || string(c.Headers[0].Value) != "h1" || string(c.Headers[1].Value) != "h2" || c.Headers[2].Value != nil {
		t.Fatalf("copy changed with the fetch's buffer: key %q value %q headers %+v", c.Key, c.Value, c.Headers)
	}
	if c.Offset != 7 || c.Partition != 2 || c.Topic != "t" || c.Headers[0].Key != "a" {
		t.Fatalf("copy lost fields: %+v", c)
	}
	// Appending to one part must not overwrite the next.
	_ = append(c.Key, 'Z')
	if !bytes.Equal(c.Value, []byte("value")) {
		t.Fatalf("appending to the key overwrote the value: %q", c.Value)
	}
}
