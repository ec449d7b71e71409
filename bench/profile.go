package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"sync"
	"time"

	"github.com/segmentio/encoding/json"
)

// profile captures d of CPU profile from every process of cl that serves
// pprof, and from this process, into <out>/pprof/<id>-<process>.pprof. It
// returns at once; wait blocks until the profiles are written and returns
// their paths.
func (b *bench) profile(ctx context.Context, cl *cluster, id string, d time.Duration) (wait func() []string) {
	dir := filepath.Join(b.cfg.out, "pprof")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.logf("pprof: %v", err)
		return func() []string { return nil }
	}
	var mu sync.Mutex
	var paths []string
	var wg sync.WaitGroup
	save := func(name string, fetch func(w io.Writer) error) {
		path := filepath.Join(dir, id+"-"+name+".pprof")
		f, err := os.Create(path)
		if err != nil {
			b.logf("pprof %s: %v", name, err)
			return
		}
		err = fetch(f)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			b.logf("pprof %s: %v", name, err)
			_ = os.Remove(path)
			return
		}
		mu.Lock()
		paths = append(paths, path)
		mu.Unlock()
	}
	for _, p := range cl.procs() {
		if p.pprofURL == "" {
			continue
		}
		wg.Go(func() {
			save(p.name, func(w io.Writer) error {
				url := fmt.Sprintf("%s/profile?seconds=%d", p.pprofURL, int(d.Seconds()))
				req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
				if err != nil {
					return err
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					return err
				}
				defer resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					return fmt.Errorf("GET %s: %s", url, resp.Status)
				}
				_, err = io.Copy(w, resp.Body)
				return err
			})
		})
	}
	wg.Go(func() {
		save("bench", func(w io.Writer) error {
			if err := pprof.StartCPUProfile(w); err != nil {
				return err
			}
			select {
			case <-time.After(d):
			case <-ctx.Done():
			}
			pprof.StopCPUProfile()
			return nil
		})
	})
	return func() []string {
		wg.Wait()
		return paths
	}
}

// memstats are the allocation counters an instrumented process reports.
type memstats struct {
	Mallocs    uint64
	TotalAlloc uint64
	HeapAlloc  uint64
}

// readMemstats reads an instrumented process's runtime.MemStats through
// expvar (/debug/vars).
func readMemstats(ctx context.Context, p *proc) (memstats, error) {
	if p.pprofURL == "" {
		return memstats{}, fmt.Errorf("%s is not instrumented", p.name)
	}
	url := strings.TrimSuffix(p.pprofURL, "/pprof") + "/vars"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return memstats{}, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return memstats{}, err
	}
	defer resp.Body.Close()
	var v struct{ Memstats memstats }
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		return memstats{}, fmt.Errorf("%s: %w", url, err)
	}
	return v.Memstats, nil
}

// remoteHeap samples an instrumented process's live heap until stopped and
// returns the largest seen, in MiB.
func remoteHeap(ctx context.Context, p *proc) (stop func() float64) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	var peak uint64
	go func() {
		defer close(done)
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			if m, err := readMemstats(ctx, p); err == nil {
				peak = max(peak, m.HeapAlloc)
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return func() float64 {
		cancel()
		<-done
		return float64(peak) / (1 << 20)
	}
}
