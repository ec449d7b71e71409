package recovery

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// errGone: the record is no longer in Kafka (retention removed it).
var errGone = errors.New("recovery: record no longer in Kafka")

// readTimeout bounds the wait for one record read back by offset.
const readTimeout = 15 * time.Second

// locReader reads records of one topic back by partition and offset. A
// plan's records are in offset order per partition, so it reads forward
// and keeps what it fetched, jumping only when the next wanted offset is
// not ahead in what it has.
type locReader struct {
	opts  []kgo.Opt
	topic string
	cl    *kgo.Client
	at    map[int32]int64 // next offset the client fetches per partition
	have  map[int32]map[int64]*kgo.Record
	// added are the partitions the client consumes: SetOffsets skips any
	// other, so a first read of a partition adds it instead.
	added map[int32]bool
	// last is the record read last: a resend's plan names one record once
	// per endpoint, one after the other.
	last *kgo.Record
}

func newLocReader(opts []kgo.Opt, topic string) *locReader {
	return &locReader{opts: opts, topic: topic, at: map[int32]int64{}, have: map[int32]map[int64]*kgo.Record{}, added: map[int32]bool{}}
}

func (l *locReader) close() {
	if l.cl != nil {
		l.cl.Close()
	}
}

// maxAhead is how far ahead a wanted offset may be for the reader to read
// on instead of jumping there.
const maxAhead = 2000

func (l *locReader) read(ctx context.Context, p int32, off int64) (*kgo.Record, error) {
	if l.last != nil && l.last.Partition == p && l.last.Offset == off {
		return l.last, nil
	}
	r, err := l.fetch(ctx, p, off)
	if err == nil {
		l.last = r
	}
	return r, err
}

func (l *locReader) fetch(ctx context.Context, p int32, off int64) (*kgo.Record, error) {
	if r, ok := l.have[p][off]; ok {
		delete(l.have[p], off)
		return r, nil
	}
	// Behind what the client fetched, the record was fetched and handed
	// out or dropped already: read it again.
	at, consuming := l.at[p]
	if !consuming || off < at || off > at+maxAhead || l.cl == nil {
		if err := l.seek(p, off); err != nil {
			return nil, err
		}
	}
	ctx, cancel := context.WithTimeout(ctx, readTimeout)
	defer cancel()
	for {
		fs := l.cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return nil, fmt.Errorf("recovery: read %s/%d/%d: %w", l.topic, p, off, ctx.Err())
		}
		var ferr error
		fs.EachError(func(_ string, _ int32, err error) {
			if errors.Is(err, kgo.ErrClientClosed) || ferr == nil {
				ferr = err
			}
		})
		var found *kgo.Record
		past := false
		fs.EachRecord(func(r *kgo.Record) {
			if r.Topic != l.topic {
				return
			}
			l.at[r.Partition] = r.Offset + 1
			switch {
			case r.Partition == p && r.Offset == off:
				found = r
			case r.Partition == p && r.Offset > off:
				past = true
				fallthrough
			default:
				if l.have[r.Partition] == nil {
					l.have[r.Partition] = map[int64]*kgo.Record{}
				}
				if len(l.have[r.Partition]) < 4*maxAhead {
					l.have[r.Partition][r.Offset] = r
				}
			}
		})
		if found != nil {
			return found, nil
		}
		if past {
			// Offsets jump over aborted records and transaction
			// markers, or retention removed it.
			return nil, errGone
		}
		if ferr != nil {
			return nil, fmt.Errorf("recovery: read %s/%d/%d: %w", l.topic, p, off, ferr)
		}
	}
}

// seek starts reading partition p at off.
func (l *locReader) seek(p int32, off int64) error {
	clear(l.have[p])
	l.at[p] = off
	if l.cl == nil {
		cl, err := kgo.NewClient(append(l.opts[:len(l.opts):len(l.opts)],
			kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{l.topic: {p: kgo.NewOffset().At(off)}}),
			kgo.FetchIsolationLevel(kgo.ReadCommitted()),
			// A partition added or moved waits for the fetch in flight,
			// which the broker holds this long when it has nothing new.
			kgo.FetchMaxWait(250*time.Millisecond))...)
		if err != nil {
			return fmt.Errorf("recovery: kafka client: %w", err)
		}
		l.cl = cl
		l.added[p] = true
		return nil
	}
	if !l.added[p] {
		l.cl.AddConsumePartitions(map[string]map[int32]kgo.Offset{l.topic: {p: kgo.NewOffset().At(off)}})
		l.added[p] = true
		return nil
	}
	l.cl.SetOffsets(map[string]map[int32]kgo.EpochOffset{l.topic: {p: {Epoch: -1, Offset: off}}})
	return nil
}
