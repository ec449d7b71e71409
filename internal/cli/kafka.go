package cli

import (
	"context"
	"flag"
	"fmt"

	"github.com/hookstream/hookstream/internal/kafkaserver"
)

func runKafka(ctx context.Context, env Env, args []string) error {
	fs := flag.NewFlagSet("kafka", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:9092", "listen address")
	dataDir := fs.String("data-dir", "", "directory to persist records and offsets in (empty: memory only)")
	partitions := fs.Int("partitions", 6, "partition count of topics created without one")
	if err := parse(fs, env, args); err != nil {
		return err
	}
	if *partitions < 1 {
		return fmt.Errorf("%w: --partitions must be at least 1", ErrUsage)
	}
	opts := []kafkaserver.Option{kafkaserver.WithAddr(*addr), kafkaserver.WithPartitions(*partitions)}
	if *dataDir != "" {
		opts = append(opts, kafkaserver.WithDataDir(*dataDir))
	}
	s, err := kafkaserver.Start(opts...)
	if err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "kafka listening on %s\n", s.Addr())
	return s.Run(ctx)
}
