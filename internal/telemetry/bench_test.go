package telemetry_test

import (
	"context"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hookstream/hookstream/internal/telemetry"
	"github.com/hookstream/hookstream/internal/testenv"
)

// BenchmarkProduceHooks measures what the Kafka tracing hooks cost a
// producer: batches of 1000 records carrying a traceparent, flushed, through
// a client without hooks and one with them (spans recorded, not exported,
// as in a role without a collector). One op is one record.
func BenchmarkProduceHooks(b *testing.B) {
	k := testenv.StartKafka(b)
	tel, err := telemetry.Setup(context.Background(), "bench", telemetry.WithGetenv(func(string) string { return "" }))
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	if _, err := kadm.NewClient(k.Client(b)).CreateTopic(ctx, 1, 1, nil, "bench"); err != nil {
		b.Fatal(err)
	}
	tp := []byte("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
	value := make([]byte, 512)
	for _, bc := range []struct {
		name string
		opts []kgo.Opt
	}{
		{"plain", nil},
		{"hooks", []kgo.Opt{tel.KafkaHooks()}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			cl := k.Client(b, bc.opts...)
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				cl.Produce(ctx, &kgo.Record{Topic: "bench", Value: value,
					Headers: []kgo.RecordHeader{{Key: "traceparent", Value: tp}}}, nil)
				if i%1000 == 999 {
					if err := cl.Flush(ctx); err != nil {
						b.Fatal(err)
					}
				}
			}
			if err := cl.Flush(ctx); err != nil {
				b.Fatal(err)
			}
		})
	}
}
