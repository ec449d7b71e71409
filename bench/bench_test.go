package main

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/encoding/json"
)

// TestSmoke runs the whole harness with tiny counts. It starts Kafka, Redis
// and every role as processes, so it only runs when HOOKSTREAM_BENCH_SMOKE=1.
func TestSmoke(t *testing.T) {
	if os.Getenv("HOOKSTREAM_BENCH_SMOKE") != "1" {
		t.Skip("set HOOKSTREAM_BENCH_SMOKE=1 to run the benchmark harness end to end")
	}
	out := t.TempDir()
	cfg, err := parseFlags([]string{"-quick", "-duration", "3s", "-events", "2000", "-out", out}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	rep, err := run(ctx, cfg, io.Discard, testWriter{t})
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	if _, err := rep.writeFiles(out); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"a", "a-noindex", "b", "c-blackhole", "c-500", "c2", "d", "e", "g", "h-default", "h", "h-bare"} {
		s := rep.scenario(id)
		if s == nil {
			t.Fatalf("scenario %s missing", id)
		}
		if s.Rate <= 0 || s.Deliveries == 0 {
			t.Errorf("scenario %s: rate %v over %d deliveries", id, s.Rate, s.Deliveries)
		}
		if s.BadSignature > 0 || s.Misrouted > 0 {
			t.Errorf("scenario %s: %d bad signatures, %d misrouted", id, s.BadSignature, s.Misrouted)
		}
		if id != "e" && id != "h-bare" && s.Verified == 0 { // the bare loops do not sign
			t.Errorf("scenario %s: no signature verified", id)
		}
	}
	if a := rep.scenario("a"); a.IndexLag == nil || a.IndexLag.Count == 0 || a.IndexLagMissing > 0 {
		t.Errorf("scenario a: index lag %+v, %d sampled attempts never queryable", a.IndexLag, a.IndexLagMissing)
	}
	if s := rep.scenario("a-noindex"); s.RatioOf == "" {
		t.Error("scenario a-noindex: no indexer loss against (a)")
	}
	b, err := os.ReadFile(filepath.Join(out, "latest.json"))
	if err != nil {
		t.Fatal(err)
	}
	var back report
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatalf("latest.json: %v", err)
	}
	svg, err := os.ReadFile(filepath.Join(out, "latency.svg"))
	if err != nil || !strings.Contains(string(svg), "<polyline") {
		t.Fatalf("latency.svg has no curve (err %v)", err)
	}
}

// TestBaselineAlone runs the bare POST loop against the receivers: no
// processes, so it always runs.
func TestBaselineAlone(t *testing.T) {
	cfg, err := parseFlags([]string{"-quick", "-scenarios", "e", "-out", t.TempDir()}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := run(context.Background(), cfg, io.Discard, testWriter{t})
	if err != nil {
		t.Fatal(err)
	}
	e := rep.scenario("e")
	if e == nil || e.Rate <= 0 {
		t.Fatalf("baseline: %+v", e)
	}
	want := int64(cfg.endpoints) * 200
	if e.Received != want || e.Duplicates != 0 || e.Errors != 0 {
		t.Errorf("baseline received %d (want %d), %d duplicates, %d errors", e.Received, want, e.Duplicates, e.Errors)
	}
	if e.BodyBytes != int64(cfg.bodySize) {
		t.Errorf("body size %d, want %d", e.BodyBytes, cfg.bodySize)
	}
}

func TestPayload(t *testing.T) {
	for _, size := range []int{512, 1024, 4096} {
		p, err := newPayload(size)
		if err != nil {
			t.Fatal(err)
		}
		for _, seq := range []int64{0, 7, 123456789} {
			sent := time.Now().UnixNano()
			body := p.envelope(nil, baselineID(seq), seq, sent)
			if len(body) != size {
				t.Errorf("size %d seq %d: body is %d bytes", size, seq, len(body))
			}
			if !json.Valid(body) {
				t.Errorf("body is not JSON: %s", body)
			}
			gotSeq, gotSent, ok := parseBody(body)
			if !ok || gotSeq != seq || gotSent != sent {
				t.Errorf("parseBody = %d, %d, %v; want %d, %d", gotSeq, gotSent, ok, seq, sent)
			}
		}
	}
	if _, err := newPayload(50); err == nil {
		t.Error("a 50-byte payload was accepted")
	}
}

func TestPercentiles(t *testing.T) {
	var lat []int64
	for i := 1; i <= 1000; i++ {
		lat = append(lat, int64(i)*int64(time.Millisecond))
	}
	st := percentiles(lat)
	if st.P50 != 500 || st.P90 != 900 || st.P99 != 990 || st.P999 != 999 || st.Max != 1000 {
		t.Errorf("percentiles = %+v", st)
	}
	if len(st.Curve) != len(curvePoints)+1 || st.Curve[0] != 1 || st.Curve[len(st.Curve)-1] != 1000 {
		t.Errorf("curve = %v", st.Curve)
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}
