package deliverylog

import (
	"context"
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kgo"
)

// ErrGone: the record is no longer in Kafka (past the topic's retention).
var ErrGone = errors.New("deliverylog: record no longer in Kafka")

// readers is how many reads run at once; more wait for a free client.
const readers = 4

// Reader reads single records back from Kafka by their location: event
// bodies stay in Kafka and are never copied into the index. It keeps a few
// clients connected, each pointed at one record at a time: a new client
// per read paid for connecting and discovering the cluster every time.
// Between reads every partition a client read from is paused.
type Reader struct {
	opts []kgo.Opt
	free chan *readClient
}

// readClient consumes the partitions it has read from, each paused between
// reads: a read sets the partition's offset and resumes it.
type readClient struct {
	cl    *kgo.Client
	known map[string]map[int32]bool
}

// NewReader returns a Reader whose clients use opts (seed brokers, TLS,
// SASL). Close releases them.
func NewReader(opts ...kgo.Opt) *Reader {
	rd := &Reader{opts: opts, free: make(chan *readClient, readers)}
	for range readers {
		rd.free <- &readClient{}
	}
	return rd
}

// Close closes the Reader's clients; reads in flight finish first.
func (rd *Reader) Close() {
	for range readers {
		rc := <-rd.free
		if rc.cl != nil {
			rc.cl.Close()
		}
	}
}

// Read returns the value of the record at loc.
func (rd *Reader) Read(ctx context.Context, loc Location) ([]byte, error) {
	var rc *readClient
	select {
	case rc = <-rd.free:
	case <-ctx.Done():
		return nil, fmt.Errorf("deliverylog: read %s: %w", loc, ctx.Err())
	}
	b, err := rd.read(ctx, rc, loc)
	if err != nil && !errors.Is(err, ErrGone) && rc.cl != nil {
		// Whatever state a failed read left is not worth reasoning about.
		rc.cl.Close()
		rc.cl = nil
	}
	rd.free <- rc
	return b, err
}

func (rd *Reader) read(ctx context.Context, rc *readClient, loc Location) ([]byte, error) {
	at := map[string]map[int32]kgo.Offset{loc.Topic: {loc.Partition: kgo.NewOffset().At(loc.Offset)}}
	if rc.cl == nil {
		cl, err := kgo.NewClient(append(append([]kgo.Opt{}, rd.opts...),
			kgo.ConsumePartitions(at),
			kgo.FetchIsolationLevel(kgo.ReadCommitted()),
			// An offset below the log start resets to the start: the
			// first record read is then not the one asked for, and says
			// it is gone.
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		)...)
		if err != nil {
			return nil, fmt.Errorf("deliverylog: kafka client: %w", err)
		}
		rc.cl, rc.known = cl, map[string]map[int32]bool{}
	} else if rc.known[loc.Topic][loc.Partition] {
		// Setting the offset drops what was fetched before.
		rc.cl.SetOffsets(map[string]map[int32]kgo.EpochOffset{loc.Topic: {loc.Partition: {Epoch: -1, Offset: loc.Offset}}})
		rc.cl.ResumeFetchPartitions(map[string][]int32{loc.Topic: {loc.Partition}})
	} else {
		rc.cl.AddConsumePartitions(at)
	}
	if rc.known[loc.Topic] == nil {
		rc.known[loc.Topic] = map[int32]bool{}
	}
	rc.known[loc.Topic][loc.Partition] = true
	defer rc.cl.PauseFetchPartitions(map[string][]int32{loc.Topic: {loc.Partition}})
	for {
		fs := rc.cl.PollRecords(ctx, 0)
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
			if r.Topic != loc.Topic || r.Partition != loc.Partition {
				return
			}
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
