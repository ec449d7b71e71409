package record

import (
	"errors"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

func TestDeliveryRoundTrip(t *testing.T) {
	now := time.UnixMilli(time.Now().UnixMilli())
	d := Delivery{
		EndpointID: "ep_1", Tenant: "acme", EventID: "evt_1", EventType: "agent.created",
		Body: []byte(`{"id":"evt_1"}`), Attempt: 3, NotBefore: now, FirstTry: now.Add(-time.Hour), Trigger: "recover",
		Trace: []kgo.RecordHeader{{Key: HeaderTrace, Value: []byte("00-abc-def-01")}},
	}
	r := d.Record("t")
	if string(r.Key) != "ep_1" || r.Topic != "t" {
		t.Fatalf("key/topic = %q/%q", r.Key, r.Topic)
	}
	got, err := Parse(r)
	if err != nil {
		t.Fatal(err)
	}
	if got.EndpointID != d.EndpointID || got.Tenant != d.Tenant || got.EventID != d.EventID ||
		got.EventType != d.EventType || string(got.Body) != string(d.Body) || got.Attempt != 3 ||
		!got.NotBefore.Equal(now) || !got.FirstTry.Equal(d.FirstTry) || len(got.Trace) != 1 || got.Trigger != "recover" {
		t.Fatalf("round trip: got %+v, want %+v", got, d)
	}
}

// A record written by fanout carries no trigger header: scheduled is the
// default, so older records read the same.
func TestTriggerScheduledIsImplicit(t *testing.T) {
	d := Delivery{EndpointID: "ep_1", EventID: "evt_1", Body: []byte("{}"), Trigger: TriggerScheduled}
	r := d.Record("t")
	if v := Header(r, HeaderTrigger); v != nil {
		t.Fatalf("scheduled delivery has %s=%q, want no header", HeaderTrigger, v)
	}
	if got, err := Parse(r); err != nil || got.Trigger != "" {
		t.Fatalf("Parse = %q, %v, want no trigger", got.Trigger, err)
	}
}

func TestParseMalformed(t *testing.T) {
	good := func() *kgo.Record {
		d := Delivery{EndpointID: "ep_1", EventID: "evt_1", Body: []byte("{}")}
		return d.Record("t")
	}
	tests := []struct {
		name string
		edit func(r *kgo.Record)
	}{
		{"no endpoint", func(r *kgo.Record) { r.Headers = r.Headers[1:] }},
		{"no event id", func(r *kgo.Record) { r.Headers = append(r.Headers[:2], r.Headers[3:]...) }},
		{"empty value", func(r *kgo.Record) { r.Value = nil }},
		{"bad attempt", func(r *kgo.Record) {
			r.Headers = append(r.Headers, kgo.RecordHeader{Key: HeaderAttempt, Value: []byte("x")})
		}},
		{"negative attempt", func(r *kgo.Record) {
			r.Headers = append(r.Headers, kgo.RecordHeader{Key: HeaderAttempt, Value: []byte("-1")})
		}},
		{"bad not-before", func(r *kgo.Record) {
			r.Headers = append(r.Headers, kgo.RecordHeader{Key: HeaderNotBefore, Value: []byte("soon")})
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := good()
			tt.edit(r)
			if _, err := Parse(r); !errors.Is(err, ErrMalformed) {
				t.Fatalf("err = %v, want ErrMalformed", err)
			}
		})
	}
}

func TestDead(t *testing.T) {
	r := &kgo.Record{Topic: "src", Partition: 2, Offset: 7, Key: []byte("k"), Value: []byte("v"),
		Headers: []kgo.RecordHeader{{Key: "a", Value: []byte("1")}, {Key: HeaderReason, Value: []byte("old")}}}
	d := Dead(r, "dead", "bad input")
	if d.Topic != "dead" || string(d.Key) != "k" || string(d.Value) != "v" {
		t.Fatalf("dead record = %+v", d)
	}
	if got := string(Header(d, HeaderReason)); got != "bad input" {
		t.Fatalf("reason = %q", got)
	}
	if got := string(Header(d, HeaderSource)); got != "src/2/7" {
		t.Fatalf("source = %q", got)
	}
	if string(Header(d, "a")) != "1" {
		t.Fatal("original header lost")
	}
	n := 0
	for _, h := range d.Headers {
		if h.Key == HeaderReason {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%d reason headers, want 1", n)
	}
}
