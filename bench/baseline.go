package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// baselineResult is what the bare POST loop achieved.
type baselineResult struct {
	Sent   int64 `json:"sent"`
	Errors int64 `json:"errors"`
}

// runBaseline POSTs count bodies from conc goroutines over keep-alive
// connections, spread over the endpoints exactly as fan-out would spread
// them (delivery k is event k/fanout to the (k mod fanout)-th endpoint of the
// event's tenant). It is the ceiling for the pipeline on this machine: the
// same receivers and bodies with no Kafka, Redis, signing or bookkeeping.
func runBaseline(ctx context.Context, rs *receivers, p payload, count int64, conc, fanout, tenants int) (baselineResult, error) {
	tr := &http.Transport{
		MaxIdleConns:        2 * conc,
		MaxIdleConnsPerHost: conc,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	var next, errs atomic.Int64
	var wg sync.WaitGroup
	for range conc {
		wg.Go(func() {
			var body []byte
			for ctx.Err() == nil {
				k := next.Add(1) - 1
				if k >= count {
					return
				}
				seq := k / int64(fanout)
				ep := int(seq%int64(tenants))*fanout + int(k%int64(fanout))
				body = p.envelope(body[:0], baselineID(seq), seq, time.Now().UnixNano())
				req, err := http.NewRequestWithContext(ctx, http.MethodPost, rs.url(ep), bytes.NewReader(body))
				if err != nil {
					errs.Add(1)
					continue
				}
				req.Header.Set("Content-Type", "application/json")
				resp, err := client.Do(req)
				if err != nil {
					errs.Add(1)
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				_ = resp.Body.Close()
				if resp.StatusCode/100 != 2 {
					errs.Add(1)
				}
			}
		})
	}
	wg.Wait()
	res := baselineResult{Sent: min(next.Load(), count), Errors: errs.Load()}
	if err := ctx.Err(); err != nil {
		return res, fmt.Errorf("baseline: %w", err)
	}
	return res, nil
}

// baselineID is a valid, unique event id for seq ("evt_" + 24 hex digits).
func baselineID(seq int64) string {
	s := strconv.FormatInt(seq, 16)
	const zeros = "000000000000000000000000"
	return "evt_" + zeros[len(s):] + s
}
