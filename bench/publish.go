package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/segmentio/encoding/json"
)

// publisher publishes one event of eventType with data for tenant and
// returns once it is acknowledged.
type publisher interface {
	Publish(ctx context.Context, tenant string, data []byte) error
	Close()
}

func tenantName(t int) string { return fmt.Sprintf("bench-t%04d", t) }

// endpointTenant is the tenant of endpoint i: i/fanout, except that the last
// of tenants has every endpoint from (tenants-1)*fanout on (in (c2) the one
// tenant of many hung endpoints; elsewhere exactly fanout of them).
func endpointTenant(i, fanout, tenants int) int { return min(i/fanout, tenants-1) }

// httpPublisher publishes through POST /v1/events, batch events per request.
type httpPublisher struct {
	base   string
	client *http.Client
}

func newHTTPPublisher(apiURL string, conns int) *httpPublisher {
	tr := &http.Transport{MaxIdleConns: conns, MaxIdleConnsPerHost: conns, DisableCompression: true}
	return &httpPublisher{base: apiURL, client: &http.Client{Transport: tr, Timeout: 30 * time.Second}}
}

func (p *httpPublisher) Close() { p.client.CloseIdleConnections() }

func (p *httpPublisher) Publish(ctx context.Context, tenant string, data []byte) error {
	body := make([]byte, 0, len(data)+64)
	body = append(body, `{"event":"`+eventType+`","data":`...)
	body = append(body, data...)
	body = append(body, '}')
	return p.post(ctx, tenant, body)
}

// PublishBatch publishes every data of datas as one request.
func (p *httpPublisher) PublishBatch(ctx context.Context, tenant string, datas [][]byte) error {
	var body []byte
	body = append(body, '[')
	for i, d := range datas {
		if i > 0 {
			body = append(body, ',')
		}
		body = append(body, `{"event":"`+eventType+`","data":`...)
		body = append(body, d...)
		body = append(body, '}')
	}
	body = append(body, ']')
	return p.post(ctx, tenant, body)
}

func (p *httpPublisher) post(ctx context.Context, tenant string, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.base+"/v1/events?tenant="+url.QueryEscape(tenant), bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp, err := p.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	if resp.StatusCode != http.StatusAccepted {
		return fmt.Errorf("POST /v1/events: %s: %s", resp.Status, b)
	}
	return nil
}

// endpointsCreated are the endpoints a scenario created, by index.
type endpointsCreated struct {
	ids     []string
	secrets []string
}

// createEndpoints creates n endpoints through the API: endpoint i belongs to
// tenant endpointTenant(i, fanout, tenants), subscribes to every type ("*"),
// strict ordering, Standard Webhooks signatures, URL rs.url(i).
func createEndpoints(ctx context.Context, apiURL string, rs *receivers, n, fanout, tenants int) (endpointsCreated, error) {
	out := endpointsCreated{ids: make([]string, n), secrets: make([]string, n)}
	client := &http.Client{Timeout: 30 * time.Second}
	defer client.CloseIdleConnections()
	var next atomic.Int64
	var mu sync.Mutex
	var errs []error
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				id, secret, err := createEndpoint(ctx, client, apiURL, tenantName(endpointTenant(i, fanout, tenants)), rs.url(i))
				if err != nil {
					mu.Lock()
					errs = append(errs, fmt.Errorf("endpoint %d: %w", i, err))
					mu.Unlock()
					return
				}
				out.ids[i], out.secrets[i] = id, secret
			}
		})
	}
	wg.Wait()
	if len(errs) > 0 {
		return out, errs[0]
	}
	return out, ctx.Err()
}

func createEndpoint(ctx context.Context, client *http.Client, apiURL, tenant, target string) (id, secret string, err error) {
	body, err := json.Marshal(map[string]any{
		"url":       target,
		"events":    []string{"*"},
		"signature": "standard",
		"ordering":  "strict",
	})
	if err != nil {
		return "", "", err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, apiURL+"/v1/endpoints?tenant="+url.QueryEscape(tenant), bytes.NewReader(body))
	if err != nil {
		return "", "", err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp, err := client.Do(req)
	if err != nil {
		return "", "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusCreated {
		return "", "", fmt.Errorf("POST /v1/endpoints: %s: %s", resp.Status, b)
	}
	var ep struct {
		ID     string `json:"id"`
		Secret string `json:"secret"`
	}
	if err := json.Unmarshal(b, &ep); err != nil {
		return "", "", fmt.Errorf("POST /v1/endpoints: %w", err)
	}
	if ep.ID == "" || ep.Secret == "" {
		return "", "", errors.New("POST /v1/endpoints: reply without id or secret: " + string(b))
	}
	return ep.ID, ep.Secret, nil
}

// loadResult is what a publisher loop did.
type loadResult struct {
	published int64 // events handed to the publisher (sequence numbers 0..published-1)
	failed    []int64
	firstErr  error
	start     time.Time
	end       time.Time
}

// failures collects the sequence numbers whose publish failed.
type failures struct {
	mu    sync.Mutex
	seqs  []int64
	first error
}

func (f *failures) add(seq int64, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.seqs = append(f.seqs, seq)
	if f.first == nil {
		f.first = err
	}
}

// closedLoop publishes while keeping at most window events not yet received
// by all their healthy endpoints, so the pipeline runs at the rate it can
// sustain without an ever-growing backlog. The recorder's complete callback
// must call release.
type closedLoop struct{ slots chan struct{} }

func newClosedLoop(window int) *closedLoop { return &closedLoop{slots: make(chan struct{}, window)} }

// release frees the slot of one complete event.
func (c *closedLoop) release(int64) {
	select {
	case <-c.slots:
	default:
	}
}

// run publishes for d from workers goroutines. Publishes use ctx, not the
// load timer, so none is cut off half way.
func (c *closedLoop) run(ctx context.Context, pub publisher, p payload, tenants, workers int, maxEvents int64, d time.Duration) loadResult {
	load, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var next atomic.Int64
	var fails failures
	res := loadResult{start: time.Now()}
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				select {
				case c.slots <- struct{}{}:
				case <-load.Done():
					return
				}
				if load.Err() != nil {
					return
				}
				seq := next.Add(1) - 1
				if seq >= maxEvents {
					next.Add(-1)
					cancel()
					return
				}
				data := p.data(make([]byte, 0, p.size), seq, time.Now().UnixNano())
				if err := pub.Publish(ctx, tenantName(int(seq%int64(tenants))), data); err != nil {
					fails.add(seq, err)
					c.release(seq) // a failed event is never delivered
				}
			}
		})
	}
	wg.Wait()
	res.end = time.Now()
	res.published = next.Load()
	res.failed, res.firstErr = fails.seqs, fails.first
	return res
}

// paced publishes rate events/s for d, open loop: event i is due at
// start + i/rate and its publish time is when it was due, so a publisher
// falling behind shows up as latency instead of hiding it.
func paced(ctx context.Context, pub publisher, p payload, tenants, workers int, rate float64, maxEvents int64, d time.Duration) loadResult {
	load, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	type job struct {
		seq int64
		due time.Time
	}
	jobs := make(chan job, workers)
	var fails failures
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for j := range jobs {
				data := p.data(make([]byte, 0, p.size), j.seq, j.due.UnixNano())
				if err := pub.Publish(ctx, tenantName(int(j.seq%int64(tenants))), data); err != nil {
					fails.add(j.seq, err)
				}
			}
		})
	}
	res := loadResult{start: time.Now()}
	interval := time.Duration(float64(time.Second) / rate)
	var seq int64
	timer := time.NewTimer(0)
loop:
	for ; seq < maxEvents; seq++ {
		due := res.start.Add(time.Duration(seq) * interval)
		if w := time.Until(due); w > 0 {
			timer.Reset(w)
			select {
			case <-timer.C:
			case <-load.Done():
				break loop
			}
		}
		if load.Err() != nil {
			break
		}
		select {
		case jobs <- job{seq, due}:
		case <-load.Done():
			break loop
		}
	}
	close(jobs)
	wg.Wait()
	res.end = time.Now()
	res.published = seq
	res.failed, res.firstErr = fails.seqs, fails.first
	return res
}

// formatRate is a short rate for log lines.
func formatRate(r float64) string { return strconv.FormatFloat(r, 'f', 0, 64) + "/s" }
