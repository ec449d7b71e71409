package cli

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/segmentio/encoding/json"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/trace"

	"github.com/hookstream/hookstream/envelope"
	"github.com/hookstream/hookstream/internal/config"
	"github.com/hookstream/hookstream/producer"
	"github.com/hookstream/hookstream/schemas"
	"github.com/hookstream/hookstream/topic"
)

func runPublish(ctx context.Context, env Env, args []string) error {
	fs := flag.NewFlagSet("publish", flag.ContinueOnError)
	brokers := config.StringList{"127.0.0.1:9092"}
	fs.Var(&brokers, "kafka-brokers", "comma-separated Kafka seed brokers")
	prefix := fs.String("topic-prefix", topic.DefaultPrefix, "prefix of every Kafka topic name")
	typ := fs.String("type", "", "event type, e.g. agent.created (required)")
	data := fs.String("data", "", "the data object: JSON, @file, or @- for stdin (required)")
	tenant := fs.String("tenant", "", "tenant that owns the event (required)")
	id := fs.String("id", "", "idempotency id kept as the event id (default: a fresh evt_ id)")
	key := fs.String("key", "", "ordering key (default: the tenant)")
	timeout := fs.Duration("timeout", 30*time.Second, "how long to wait for Kafka's acknowledgement")
	var sec kafkaSecFlags
	sec.register(fs)
	if err := parse(fs, env, args); err != nil {
		return err
	}
	secOpts, err := sec.opts(env)
	if err != nil {
		return err
	}
	switch {
	case *typ == "":
		return fmt.Errorf("%w: --type is required", ErrUsage)
	case *data == "":
		return fmt.Errorf("%w: --data is required (JSON, @file or @-)", ErrUsage)
	case *tenant == "":
		return fmt.Errorf("%w: --tenant is required", ErrUsage)
	case len(brokers) == 0:
		return fmt.Errorf("%w: --kafka-brokers is empty", ErrUsage)
	case *timeout <= 0:
		return fmt.Errorf("%w: --timeout must be positive", ErrUsage)
	}
	body, err := readData(env, *data)
	if err != nil {
		return err
	}
	catalog, err := schemas.Load()
	if err != nil {
		return err
	}

	// Like the roles' clients, so that the event carries a traceparent and
	// its trace starts here.
	tel, stopTelemetry, err := setupTelemetry(ctx, env, "hookstream-publish")
	if err != nil {
		return err
	}
	defer stopTelemetry()
	kc, err := kgo.NewClient(kafkaOpts(brokers, tel, append(secOpts, producer.ClientOpts(*timeout)...)...)...)
	if err != nil {
		return fmt.Errorf("kafka client: %w", err)
	}
	defer kc.Close()
	p := producer.New(kc, catalog, producer.WithTopicPrefix(*prefix), producer.WithMeterProvider(tel.Meter), producer.WithPropagator(tel.Propagator))
	opts := []producer.PublishOption{}
	if *id != "" {
		opts = append(opts, producer.WithID(*id))
	}
	if *key != "" {
		opts = append(opts, producer.WithKey(*key))
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	// The event's trace starts here: the producer writes this span's
	// traceparent into the record.
	ctx, span := tel.Tracer.Tracer("hookstream/cli").Start(ctx, "hookstream publish", trace.WithSpanKind(trace.SpanKindProducer))
	eventID, err := p.Publish(ctx, *tenant, *typ, body, opts...)
	span.End()
	if err != nil {
		return publishCLIError(err, catalog, topic.New(*prefix).Events, brokers.String())
	}
	fmt.Fprintln(env.Stdout, eventID)
	return nil
}

// readData returns the --data value as compact JSON: given inline, from a
// file (@path) or from stdin (@-). Compacting drops the file's layout, which
// receivers have no use for; values are kept exactly.
func readData(env Env, v string) ([]byte, error) {
	raw := []byte(v)
	if path, ok := strings.CutPrefix(v, "@"); ok {
		var err error
		if path == "-" {
			raw, err = io.ReadAll(env.Stdin)
		} else {
			raw, err = os.ReadFile(path)
		}
		if err != nil {
			return nil, fmt.Errorf("%w: --data %s: %w", ErrUsage, v, err)
		}
	}
	var out bytes.Buffer
	if err := json.Compact(&out, raw); err != nil {
		return nil, fmt.Errorf("%w: --data is not valid JSON: %w", ErrUsage, err)
	}
	return out.Bytes(), nil
}

// publishCLIError names the flag, and for schema errors the field, that an
// error is about. Validation errors are usage errors (exit 2).
func publishCLIError(err error, catalog *schemas.Catalog, eventsTopic, brokers string) error {
	var ve *schemas.ValidationError
	var fe *envelope.FieldError
	switch {
	case errors.Is(err, producer.ErrInvalidTenant):
		return fmt.Errorf("%w: --tenant: %w", ErrUsage, err)
	case errors.Is(err, schemas.ErrUnknownType):
		names := make([]string, 0, 32)
		for _, t := range catalog.Types() {
			names = append(names, t.Name)
		}
		return fmt.Errorf("%w: --type: %w; known types: %s", ErrUsage, err, strings.Join(names, ", "))
	case errors.As(err, &ve):
		return fmt.Errorf("%w: --data: schema violation at /data%s: %s", ErrUsage, ve.Pointer, ve.Message)
	case errors.Is(err, schemas.ErrInvalidJSON):
		return fmt.Errorf("%w: --data: %w", ErrUsage, err)
	case errors.As(err, &fe) && fe.Pointer == "/id":
		return fmt.Errorf("%w: --id: %w", ErrUsage, err)
	case errors.Is(err, envelope.ErrTooLarge):
		return fmt.Errorf("%w: --data: %w", ErrUsage, err)
	case errors.Is(err, kerr.UnknownTopicOrPartition):
		return fmt.Errorf("topic %s does not exist (hookstream api, fanout or dev create it at start): %w", eventsTopic, err)
	}
	return fmt.Errorf("publish to Kafka at %s (--kafka-brokers): %w", brokers, err)
}
