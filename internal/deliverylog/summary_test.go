package deliverylog_test

import (
	"context"
	"errors"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hookstream/hookstream/deliverer"
	"github.com/hookstream/hookstream/internal/deliverylog"
	"github.com/hookstream/hookstream/internal/testenv"
)

// TestAttemptReadBack: the index keeps an attempt's summary only; the one
// attempt read in full gets its headers, response body and error text back
// from its record in the attempts topic.
func TestAttemptReadBack(t *testing.T) {
	e := newEnv(t)
	x := e.indexer(t)
	testenv.Run(t, x)
	headers := map[string]string{"Content-Type": "application/json", "Webhook-Signature": "[redacted]"}
	at := time.Now().UTC()
	e.produce(t, "acme", "ep_a", 1, func(_ int, a *deliverer.Attempt) {
		a.Outcome, a.Status, a.ErrorClass, a.Error = "failed", 500, "http_status", "HTTP 500 from receiver"
		a.ResponseBody, a.ResponseTruncated, a.RequestHeaders = `{"error":"internal"}`, true, headers
		a.LatencyMS, a.Trigger, a.Attempt, a.At = 42, "recover", 3, at
	})
	ix := x.Index()
	var listed []deliverylog.Entry
	testenv.Eventually(t, 20*time.Second, "indexed", func() bool {
		listed = all(t, ix, "acme", "ep_a", deliverylog.Filter{})
		return len(listed) == 1
	})
	sum := listed[0]
	want := deliverer.Attempt{Tenant: "acme", EndpointID: "ep_a", EventID: sum.EventID, EventType: "agent.created", Attempt: 3,
		Status: 500, LatencyMS: 42, Outcome: "failed", ErrorClass: "http_status", Trigger: "recover", ResponseTruncated: true}
	got := sum.Attempt
	// The index keeps times to the millisecond; the full attempt has it
	// exactly (below).
	if !got.At.Equal(at.Truncate(time.Millisecond)) {
		t.Errorf("summary time %v, want %v", got.At, at.Truncate(time.Millisecond))
	}
	got.At = time.Time{}
	if !equalAttempt(got, want) {
		t.Errorf("summary %+v, want %+v", got, want)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// The index alone (no records): the summary, nothing heavy.
	if a, err := ix.Attempt(ctx, "acme", sum.ID); err != nil || a.ResponseBody != "" || a.Error != "" || a.RequestHeaders != nil || a.Status != 500 {
		t.Errorf("Attempt without records = %+v, %v; want the summary alone", a, err)
	}
	full := deliverylog.NewIndex(e.redis.Client, 0, deliverylog.WithRecords(deliverylog.NewReader(kgo.SeedBrokers(e.kafka.Addr)), e.topics.Attempts))
	a, err := full.Attempt(ctx, "acme", sum.ID)
	if err != nil {
		t.Fatal(err)
	}
	if a.Error != "HTTP 500 from receiver" || a.ResponseBody != `{"error":"internal"}` || !maps.Equal(a.RequestHeaders, headers) || a.Status != 500 || a.ID != sum.ID || !a.At.Equal(at) {
		t.Errorf("Attempt = %+v; want the heavy fields from Kafka", a)
	}
	if _, err := full.Attempt(ctx, "globex", sum.ID); !errors.Is(err, deliverylog.ErrNotFound) {
		t.Error("another tenant read the attempt")
	}
	// The heavy fields are not in Redis.
	keys, err := e.redis.Client.Keys(ctx, "dl:v2:{acme}:eps:*").Result()
	if err != nil || len(keys) == 0 {
		t.Fatalf("stream keys %v, %v", keys, err)
	}
	for _, k := range keys {
		xs, err := e.redis.Client.XRange(ctx, k, "-", "+").Result()
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range xs {
			for _, v := range x.Values {
				if s, _ := v.(string); strings.Contains(s, "internal") || strings.Contains(s, "Webhook") || strings.Contains(s, "HTTP 500") {
					t.Errorf("stream %s holds a heavy field: %q", k, s)
				}
			}
		}
	}
}

// TestAttemptReadBackRefusesAnotherRecord: an id whose coordinates hold
// another attempt (a topic recreated under the index) is an error, not
// another attempt's data.
func TestAttemptReadBackRefusesAnotherRecord(t *testing.T) {
	e := newEnv(t)
	e.produce(t, "acme", "ep_other", 1, nil)
	ix := deliverylog.NewIndex(e.redis.Client, 0, deliverylog.WithRecords(deliverylog.NewReader(kgo.SeedBrokers(e.kafka.Addr)), e.topics.Attempts))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// Find where the record went: one partition holds offset 0.
	for p := range int32(3) {
		a := deliverer.Attempt{Tenant: "acme", EndpointID: "ep_a", EventID: "evt_x", EventType: "agent.created", Attempt: 1,
			Outcome: "delivered", Status: 200, Trigger: "scheduled", At: time.Now()}
		if err := ix.Add(ctx, p, 0, a); err != nil {
			t.Fatal(err)
		}
	}
	pg, err := ix.EndpointAttempts(ctx, "acme", "ep_a", deliverylog.Query{})
	if err != nil || len(pg.Data) != 3 {
		t.Fatalf("page %+v, %v", pg, err)
	}
	refused := 0
	for _, en := range pg.Data {
		// The two empty partitions wait for a record until the deadline.
		rctx, cancelRead := context.WithTimeout(ctx, 3*time.Second)
		if _, err := ix.Attempt(rctx, "acme", en.ID); err != nil && strings.Contains(err.Error(), "another attempt") {
			refused++
		}
		cancelRead()
	}
	if refused != 1 {
		t.Errorf("%d reads refused as another attempt's record, want 1", refused)
	}
}

func equalAttempt(a, b deliverer.Attempt) bool {
	return a.Tenant == b.Tenant && a.EndpointID == b.EndpointID && a.EventID == b.EventID && a.EventType == b.EventType &&
		a.Attempt == b.Attempt && a.Status == b.Status && a.LatencyMS == b.LatencyMS && a.Outcome == b.Outcome &&
		a.ErrorClass == b.ErrorClass && a.Trigger == b.Trigger && a.ResponseTruncated == b.ResponseTruncated &&
		a.Error == b.Error && a.ResponseBody == b.ResponseBody && len(a.RequestHeaders) == len(b.RequestHeaders)
}
