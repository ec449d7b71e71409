package deliverylog

import (
	"context"
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kgo"
)

// ErrGone: the record is no longer in Kafka (past the topic's retention).
var ErrGone = errors.New("deliverylog: record no longer in Kafka")

// Reader reads single records back from Kafka by their location: event
// bodies stay in Kafka and are never copied into the index.
type Reader struct {
	opts []kgo.Opt
}

// NewReader returns a Reader whose clients use opts (seed brokers, TLS,
// SASL).
func NewReader(opts ...kgo.Opt) *Reader { return &Reader{opts: opts} }

// Read returns the value of the record at loc. Each read uses a client of
// its own: reads are rare next to writes, and a shared consumer would
// serialise them.
func (rd *Reader) Read(ctx context.Context, loc Location) ([]byte, error) {
	cl, err := kgo.NewClient(append(append([]kgo.Opt{}, rd.opts...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{loc.Topic: {loc.Partition: kgo.NewOffset().At(loc.Offset)}}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		// An offset below the log start resets to the start: the first
		// record read is then not the one asked for, and says it is gone.
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
	)...)
	if err != nil {
		return nil, fmt.Errorf("deliverylog: kafka client: %w", err)
	}
	defer cl.Close()
	for {
		fs := cl.PollRecords(ctx, 1)
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("deliverylog: read %s: %w", loc, err)
		}
		var ferr error
		fs.EachError(func(_ string, _ int32, err error) { ferr = err })
		if ferr != nil {
			return nil, fmt.Errorf("deliverylog: read %s: %w", loc, ferr)
		}
		var out []byte
		found, gone := false, false
		fs.EachRecord(func(r *kgo.Record) {
			switch {
			case r.Offset == loc.Offset:
				out, found = r.Value, true
			case r.Offset > loc.Offset:
				gone = true
			}
		})
		switch {
		case found:
			return out, nil
		case gone:
			return nil, fmt.Errorf("%w: %s", ErrGone, loc)
		}
	}
}
