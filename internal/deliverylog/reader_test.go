package deliverylog_test

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hookstream/hookstream/internal/deliverylog"
	"github.com/hookstream/hookstream/internal/testenv"
	"github.com/hookstream/hookstream/topic"
)

// TestReader reads records back by offset, and says when one is gone.
func TestReader(t *testing.T) {
	k := testenv.StartKafka(t)
	names := k.CreateTopics(t, "rd.", topic.Partitions{Events: 1, Deliveries: 1, Other: 1})
	cl := k.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var locs []deliverylog.Location
	for _, v := range []string{"a", "b", "c"} {
		r := cl.ProduceSync(ctx, &kgo.Record{Topic: names.Events, Value: []byte(v)})
		if err := r.FirstErr(); err != nil {
			t.Fatal(err)
		}
		locs = append(locs, deliverylog.Location{Topic: names.Events, Partition: r[0].Record.Partition, Offset: r[0].Record.Offset})
	}
	rd := deliverylog.NewReader(kgo.SeedBrokers(k.Addr))
	for i, want := range []string{"a", "b", "c"} {
		got, err := rd.Read(ctx, locs[i])
		if err != nil || !bytes.Equal(got, []byte(want)) {
			t.Errorf("Read(%s) = %q, %v; want %q", locs[i], got, err, want)
		}
	}
	// Below the log start: the start is read instead, so it is gone.
	offs := kadm.Offsets{}
	offs.Add(kadm.Offset{Topic: names.Events, Partition: 0, At: 2})
	res, err := kadm.NewClient(cl).DeleteRecords(ctx, offs)
	if err == nil {
		err = res.Error()
	}
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rd.Read(ctx, locs[0]); !errors.Is(err, deliverylog.ErrGone) {
		t.Errorf("Read of a deleted record: %v, want ErrGone", err)
	}
}

// BenchmarkReader reports p50/p99 of reading one event back from Kafka, as
// GET /v1/events/{id} does.
func BenchmarkReader(b *testing.B) {
	k := testenv.StartKafka(b)
	names := k.CreateTopics(b, "rd.", topic.Partitions{Events: 1, Deliveries: 1, Other: 1})
	cl := k.Client(b)
	ctx := context.Background()
	var recs []*kgo.Record
	for range 1000 {
		recs = append(recs, &kgo.Record{Topic: names.Events, Value: bytes.Repeat([]byte("x"), 300)})
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		b.Fatal(err)
	}
	rd := deliverylog.NewReader(kgo.SeedBrokers(k.Addr))
	ds := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		start := time.Now()
		if _, err := rd.Read(ctx, deliverylog.Location{Topic: names.Events, Offset: int64(i*7) % 1000}); err != nil {
			b.Fatal(err)
		}
		ds = append(ds, time.Since(start))
	}
	slices.Sort(ds)
	b.ReportMetric(float64(ds[len(ds)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(ds[len(ds)*99/100].Microseconds())/1000, "p99-ms")
}
