package producer

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// errClosed is returned for a batch published after Close.
var errClosed = errors.New("producer: closed")

// produceAll produces recs in one transaction on a pooled client, so that a
// failure on one partition leaves nothing of the batch visible on the others.
func (p *Producer) produceAll(ctx context.Context, recs []*kgo.Record) error {
	c, err := p.txns.get(ctx)
	if err != nil {
		return p.produceError(err, false)
	}
	if err := c.BeginTransaction(); err != nil {
		p.txns.put(c, true)
		return p.produceError(err, false)
	}
	// A transactional client waits for Kafka's answer to a request on the
	// wire before failing its records, which can outlast ctx; the answer
	// is not needed to give up, since the batch is then never committed.
	produced := make(chan error, 1)
	go func() { produced <- c.ProduceSync(ctx, recs...).FirstErr() }()
	select {
	case err = <-produced:
	case <-ctx.Done():
		go func() {
			<-produced
			p.txns.abort(c)
		}()
		return p.produceError(ctx.Err(), false)
	}
	if err == nil {
		err = ctx.Err() // the caller gave up: do not commit
	}
	if err != nil {
		go p.txns.abort(c)
		return p.produceError(err, false)
	}
	if err := c.EndTransaction(ctx, kgo.TryCommit); err != nil {
		go p.txns.abort(c) // after an unconfirmed commit this fences it
		return p.produceError(fmt.Errorf("commit: %w", err), !answered(err))
	}
	p.txns.put(c, false)
	return nil
}

// produceError wraps a failed produce, adding ErrRejected or, when unknown,
// ErrOutcomeUnknown.
func (p *Producer) produceError(err error, unknown bool) error {
	switch {
	case rejected(err):
		return fmt.Errorf("producer: produce to %s: %w: %w", p.topics.Events, ErrRejected, err)
	case unknown:
		return fmt.Errorf("producer: produce to %s: %w: %w", p.topics.Events, ErrOutcomeUnknown, err)
	}
	return fmt.Errorf("producer: produce to %s: %w", p.topics.Events, err)
}

// answered reports whether a failed commit certainly did not commit: Kafka
// answered with a non-retriable error. A lost connection, a deadline or
// UNKNOWN_SERVER_ERROR leave the outcome open (the rule franz-go's
// EndTransaction documents).
func answered(err error) bool {
	var ke *kerr.Error
	return errors.As(err, &ke) && !ke.Retriable && ke != kerr.UnknownServerError
}

// txnPool lends transactional clients, each to one batch at a time, opening
// up to cap(slots) of them on demand.
type txnPool struct {
	base    []kgo.Opt // the producer client's options, minus nonTransactional ones
	prefix  string
	timeout time.Duration
	idle    chan *txnClient
	slots   chan int // numbers of the clients not open

	mu     sync.Mutex
	closed bool
}

// txnClient is a pooled client; slot numbers its transactional id.
type txnClient struct {
	*kgo.Client
	slot int
}

func newTxnPool(client *kgo.Client, c cfg) *txnPool {
	var base []kgo.Opt
	for _, o := range client.Opts() {
		if _, skip := o.(nonTransactional); !skip {
			base = append(base, o)
		}
	}
	p := &txnPool{base: base, prefix: c.txnIDPrefix, timeout: c.txnTimeout,
		idle: make(chan *txnClient, c.batchClients), slots: make(chan int, c.batchClients)}
	for i := range c.batchClients {
		p.slots <- i
	}
	return p
}

// get returns an idle client, or opens one while fewer than the limit are
// open, or waits for one until ctx ends.
func (p *txnPool) get(ctx context.Context) (*txnClient, error) {
	select {
	case c := <-p.idle:
		return c, nil
	default:
	}
	select {
	case c := <-p.idle:
		return c, nil
	case slot := <-p.slots:
		p.mu.Lock()
		closed := p.closed
		p.mu.Unlock()
		if closed {
			p.slots <- slot
			return nil, errClosed
		}
		// A slot keeps its id across clients: a fresh client's
		// InitProducerID fences whatever a broken one left open.
		opts := append(slices.Clone(p.base),
			kgo.TransactionalID(fmt.Sprintf("%s-%d", p.prefix, slot)),
			kgo.TransactionTimeout(p.timeout))
		cl, err := kgo.NewClient(opts...)
		if err != nil {
			p.slots <- slot
			return nil, fmt.Errorf("transactional client: %w", err)
		}
		return &txnClient{Client: cl, slot: slot}, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// put returns c to the pool, or closes it when it is broken or the pool is
// closed.
func (p *txnPool) put(c *txnClient, broken bool) {
	p.mu.Lock()
	keep := !broken && !p.closed
	if keep {
		p.idle <- c // never blocks: at most cap(idle) clients exist
	}
	p.mu.Unlock()
	if !keep {
		c.Close()
		p.slots <- c.slot
	}
}

// abort aborts c's transaction, waiting for records still in flight, and
// returns c to the pool; a client that cannot abort is closed.
func (p *txnPool) abort(c *txnClient) {
	ctx, cancel := context.WithTimeout(context.Background(), p.timeout)
	defer cancel()
	err := c.AbortBufferedRecords(ctx)
	if err == nil {
		err = c.EndTransaction(ctx, kgo.TryAbort)
	}
	p.put(c, err != nil)
}

// close closes the idle clients; busy ones close when their batch or abort
// ends.
func (p *txnPool) close() {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	for {
		select {
		case c := <-p.idle:
			c.Close()
			p.slots <- c.slot
		default:
			return
		}
	}
}
