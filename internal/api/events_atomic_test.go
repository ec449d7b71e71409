package api_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/hookstream/hookstream/internal/api"
	"github.com/hookstream/hookstream/internal/testenv"
)

// TestPublishEventsBatchFailsWhole fails Kafka's produce to one partition
// in the middle of a batch whose events span several partitions. The API
// must answer as API.md says for a failed publish, and a read_committed
// reader (as fanout reads) must see none of the batch: a 503 means nothing
// was accepted. A permanent refusal is not a "retry later".
func TestPublishEventsBatchFailsWhole(t *testing.T) {
	tests := []struct {
		name   string
		err    *kerr.Error
		single bool // a single event on the failing partition instead of a batch
		status int
		code   string
	}{
		{"transient error", kerr.NotEnoughReplicas, false, 503, api.CodeUnavailable},
		{"not authorized", kerr.TopicAuthorizationFailed, false, 500, api.CodeRejected},
		{"not authorized, single event", kerr.TopicAuthorizationFailed, true, 500, api.CodeRejected},
		{"too large for the broker", kerr.MessageTooLarge, false, 413, api.CodeTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := testenv.StartKafka(t)
			in := startIngest(t, k)
			items, bad := spreadEvents(t, k, 9)
			body := "[" + strings.Join(items, ",") + "]"
			if tt.single {
				body = items[len(items)/2]
			}
			fault := k.Server.Cluster().Fault(kfake.Fault{
				Keys: []kmsg.Key{kmsg.Produce}, Topic: eventsTopic, Partitions: []int32{bad}, Err: tt.err, Count: -1,
			})
			r := post(t, in.url+"/v1/events", "tok-acme", body)
			if r.status != tt.status || r.Error.Code != tt.code || r.ID != "" || r.IDs != nil {
				t.Fatalf("got %d %q (%s) ids %q %q; want %d %q", r.status, r.Error.Code, r.Error.Message, r.ID, r.IDs, tt.status, tt.code)
			}
			if tt.status == 500 && !strings.Contains(r.Error.Message, tt.err.Message) {
				t.Errorf("message %q does not name %s", r.Error.Message, tt.err.Message)
			}
			if fault.Hits() == 0 {
				t.Fatal("the fault never fired")
			}
			if got := k.ReadAll(t, eventsTopic); len(got) != 0 {
				t.Fatalf("answered %d, but %d records of the request are visible to read_committed readers", r.status, len(got))
			}
		})
	}
}

// spreadEvents returns n event bodies whose keys land on several partitions
// of the events topic, and the partition of the middle one.
func spreadEvents(t *testing.T, k *testenv.Kafka, n int) ([]string, int32) {
	t.Helper()
	parts := len(k.Server.Cluster().PartitionInfos(eventsTopic))
	partitioner := kgo.StickyKeyPartitioner(nil).ForTopic(eventsTopic)
	partition := func(key string) int32 {
		return int32(partitioner.Partition(&kgo.Record{Key: []byte(key)}, parts))
	}
	items := make([]string, n)
	seen := map[int32]bool{}
	for i := range items {
		key := fmt.Sprintf("k%d", i)
		items[i] = ev("agent.created", created, `,"key":"`+key+`"`)
		seen[partition(key)] = true
	}
	if len(seen) < 2 {
		t.Fatalf("the keys land on %d partition(s); want several", len(seen))
	}
	return items, partition(fmt.Sprintf("k%d", n/2))
}

// TestPublishEventsDeepNesting: a body within the size limit but nested
// millions deep is a 400, not a stack overflow that kills the process.
func TestPublishEventsDeepNesting(t *testing.T) {
	in := startIngest(t, testenv.StartKafka(t))
	const depth = 2 << 20 // 4 MiB body, under the 5 MiB default limit
	body := strings.Repeat("[", depth) + strings.Repeat("]", depth)
	r := post(t, in.url+"/v1/events", "tok-acme", body)
	if r.status != 400 || r.Error.Code != api.CodeMalformed {
		t.Fatalf("got %d %q (%s); want 400 %q", r.status, r.Error.Code, r.Error.Message, api.CodeMalformed)
	}
}
