package main

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/segmentio/encoding/json"
)

// report is everything one run measured; latest.json holds it.
type report struct {
	Date string `json:"date"`
	// LoadAvg is /proc/loadavg's 1-minute average before and after the run
	// (the benchmark's own processes count in the second). CPU used by
	// processes outside the benchmark is in each scenario's cpu_cores
	// under "other".
	LoadAvg   [2]float64        `json:"load_avg_1m_before_after"`
	Machine   machine           `json:"machine"`
	Config    map[string]any    `json:"config"`
	Scenarios []*scenarioResult `json:"scenarios"`
	Publish   []*publishResult  `json:"publish,omitempty"`
	Fanout    []*fanoutResult   `json:"fanout,omitempty"`
	Targets   []target          `json:"targets"`
	Problems  []string          `json:"problems,omitempty"`

	// FanoutScale is scenario fanout-scale (fanoutscale.go).
	FanoutScale *fanoutScaleResult `json:"fanout_scale,omitempty"`
}

type machine struct {
	CPU    string `json:"cpu"`
	Cores  int    `json:"cores"`
	Go     string `json:"go"`
	OS     string `json:"os"`
	Kernel string `json:"kernel,omitempty"`
	MemGiB int    `json:"mem_gib,omitempty"`
}

// scenarioResult is one delivery scenario: (a) to (e), (c2).
type scenarioResult struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	Description string `json:"description"`
	// Rate is deliveries/s to healthy endpoints over the measured window.
	Rate       float64 `json:"deliveries_per_s"`
	Deliveries int64   `json:"deliveries_measured"`
	Seconds    float64 `json:"seconds_measured"`
	// Ratio is Rate divided by the rate of RatioOf.
	Ratio   float64 `json:"ratio,omitempty"`
	RatioOf string  `json:"ratio_of,omitempty"`
	// IndexerLossPct (a-noindex) is how much lower (a)'s rate was with the
	// delivery-log indexer than this run's without it (goal <= 10).
	IndexerLossPct float64 `json:"indexer_loss_pct,omitempty"`
	// IndexLag (a) is receipt by the receiver to queryable in the
	// delivery-log index, over one delivery in indexLagEvery; IndexLagMissing
	// of the sampled ones were not queryable 10 s after the load ended.
	IndexLag        *latencyStats `json:"index_lag,omitempty"`
	IndexLagMissing int           `json:"index_lag_missing,omitempty"`
	Latency         latencyStats  `json:"latency"`
	// PeakRSS is each process's peak resident set in MiB during the scenario.
	PeakRSS map[string]float64 `json:"peak_rss_mib"`
	// CPUCores is the CPU each process used while the load ran, in cores.
	CPUCores map[string]float64 `json:"cpu_cores_during_load,omitempty"`

	Published    int64   `json:"events_published,omitempty"`
	PublishRate  float64 `json:"events_published_per_s,omitempty"`
	Received     int64   `json:"deliveries_received"`
	Incomplete   int64   `json:"deliveries_missing,omitempty"`
	Duplicates   int64   `json:"duplicates,omitempty"`
	Misrouted    int64   `json:"misrouted,omitempty"`
	Verified     int64   `json:"signatures_verified,omitempty"`
	BadSignature int64   `json:"signatures_bad,omitempty"`
	Unhealthy    int64   `json:"requests_to_unhealthy,omitempty"`
	Errors       int64   `json:"errors,omitempty"`
	BodyBytes    int64   `json:"body_bytes,omitempty"`
	// Connections is how many connections the receivers accepted.
	Connections int64 `json:"receiver_connections"`
	// InFlight is the mean number of requests the receivers were serving
	// while the load ran (sampled every 50ms), InFlightPeak the most.
	InFlight     float64  `json:"receiver_in_flight_mean,omitempty"`
	InFlightPeak int64    `json:"receiver_in_flight_peak,omitempty"`
	Notes        []string `json:"notes,omitempty"`
}

// publishResult is publish throughput through one path.
type publishResult struct {
	Path        string             `json:"path"`
	Events      int64              `json:"events"`
	Seconds     float64            `json:"seconds"`
	Rate        float64            `json:"events_per_s"`
	AllocsEvent float64            `json:"allocs_per_event,omitempty"`
	BytesEvent  float64            `json:"alloc_bytes_per_event,omitempty"`
	AllocsWhere string             `json:"allocs_measured_in,omitempty"`
	PeakHeapMiB float64            `json:"peak_heap_mib,omitempty"`
	PeakRSS     map[string]float64 `json:"peak_rss_mib"`
	Concurrency int                `json:"concurrency"`
	Errors      int64              `json:"errors,omitempty"`
	Notes       []string           `json:"notes,omitempty"`
}

// fanoutResult is the fanout role alone at one fan-out.
type fanoutResult struct {
	Fanout     int                `json:"fanout"`
	Events     int64              `json:"events"`
	Seconds    float64            `json:"seconds"`
	Measured   int64              `json:"events_measured"`
	Note       string             `json:"note,omitempty"`
	EventsS    float64            `json:"events_per_s"`
	Deliveries float64            `json:"deliveries_per_s"`
	PeakRSS    map[string]float64 `json:"peak_rss_mib"`
}

// target is one goal from the issue, reported, never asserted.
type target struct {
	Name     string `json:"name"`
	Goal     string `json:"goal"`
	Measured string `json:"measured"`
	Met      bool   `json:"met"`
}

func describeMachine() machine {
	m := machine{Cores: runtime.NumCPU(), Go: runtime.Version(), OS: runtime.GOOS + "/" + runtime.GOARCH}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
		_ = f.Close()
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb int
		if _, err := fmt.Sscanf(string(b), "MemTotal: %d kB", &kb); err == nil {
			m.MemGiB = int(math.Round(float64(kb) / (1 << 20)))
		}
	}
	return m
}

func (r *report) scenario(id string) *scenarioResult {
	for _, s := range r.Scenarios {
		if s.ID == id {
			return s
		}
	}
	return nil
}

// judge fills in the targets from whatever scenarios ran.
func (r *report) judge() {
	r.Targets = nil
	if t, ok := r.FanoutScale.target(); ok {
		r.Targets = append(r.Targets, t)
	}
	a, e, b := r.scenario("a"), r.scenario("e"), r.scenario("b")
	if a != nil && e != nil && e.Rate > 0 {
		x := a.Rate / e.Rate
		r.Targets = append(r.Targets, target{"(a)/(e) throughput vs bare POST loop", ">= 0.6", fmt.Sprintf("%.2f", x), x >= 0.6})
	}
	if b != nil && b.Latency.Count > 0 {
		r.Targets = append(r.Targets, target{b.Name + ": p99", "<= 50 ms", fmt.Sprintf("%.1f ms", b.Latency.P99), b.Latency.P99 <= 50})
	}
	for _, id := range []string{"c-blackhole", "c-500"} {
		c := r.scenario(id)
		if c == nil || a == nil || a.Rate == 0 {
			continue
		}
		x := c.Rate / a.Rate
		r.Targets = append(r.Targets, target{"(" + id + ") healthy throughput vs (a)", ">= 0.90", fmt.Sprintf("%.2f", x), x >= 0.9})
		if a.Latency.P99 > 0 {
			y := c.Latency.P99 / a.Latency.P99
			r.Targets = append(r.Targets, target{"(" + id + ") healthy p99 vs (a)", "<= 2x", fmt.Sprintf("%.2fx (%.1f vs %.1f ms)", y, c.Latency.P99, a.Latency.P99), y <= 2})
		}
	}
	r.judgeScale()
	if c := r.scenario("c2"); c != nil && c.Latency.Count > 0 && b != nil && b.Latency.P99 > 0 {
		y := c.Latency.P99 / b.Latency.P99
		r.Targets = append(r.Targets, target{"(c2) other tenants' p99 vs (b)", "<= 2x", fmt.Sprintf("%.2fx (%.1f vs %.1f ms)", y, c.Latency.P99, b.Latency.P99), y <= 2})
	}
	if f := r.scenario("f"); f != nil && f.Latency.Count > 0 && b != nil && b.Latency.P99 > 0 {
		y := f.Latency.P99 / b.Latency.P99
		r.Targets = append(r.Targets, target{"(f) other endpoints' p99 vs (b), beside a replay", "<= 2x", fmt.Sprintf("%.2fx (%.1f vs %.1f ms)", y, f.Latency.P99, b.Latency.P99), y <= 2})
	}
}

// writeTable prints the results as the README quotes them.
func (r *report) writeTable(w io.Writer) {
	fmt.Fprintf(w, "\nHookstream end-to-end benchmark, %s\n", r.Date)
	fmt.Fprintf(w, "machine: %s, %d cores, %d GiB, %s, %s, kernel %s\n", r.Machine.CPU, r.Machine.Cores, r.Machine.MemGiB, r.Machine.OS, r.Machine.Go, r.Machine.Kernel)
	fmt.Fprintf(w, "load average (1 min) before/after: %.2f / %.2f\n", r.LoadAvg[0], r.LoadAvg[1])
	if other := r.otherCPU(); other > otherCPUNoise {
		fmt.Fprintf(w, "warning: processes outside the benchmark used up to %.2f cores during a scenario (cpu lines, \"other\"): they competed for the CPU and skew the numbers\n", other)
	}
	fmt.Fprintln(w)
	if len(r.Publish) > 0 {
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "publish path\tevents/s\tallocs/event\tB/event\tpeak heap MiB\tpeak RSS MiB")
		for _, p := range r.Publish {
			allocs, bytes, heap := "-", "-", "-"
			if p.AllocsEvent > 0 {
				allocs = fmt.Sprintf("%.1f", p.AllocsEvent)
				bytes = fmt.Sprintf("%.0f", p.BytesEvent)
				if p.AllocsWhere != "" {
					allocs += " (" + p.AllocsWhere + ")"
				}
			}
			if p.PeakHeapMiB > 0 {
				heap = fmt.Sprintf("%.1f", p.PeakHeapMiB)
			}
			fmt.Fprintf(tw, "%s\t%.0f\t%s\t%s\t%s\t%s\n", p.Path, p.Rate, allocs, bytes, heap, rssString(p.PeakRSS))
		}
		_ = tw.Flush()
		fmt.Fprintln(w)
	}
	if len(r.Fanout) > 0 {
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "fanout alone\tevents/s\tdeliveries/s\tpeak RSS MiB")
		for _, f := range r.Fanout {
			fmt.Fprintf(tw, "fan-out %d\t%.0f\t%.0f\t%s\n", f.Fanout, f.EventsS, f.Deliveries, rssString(f.PeakRSS))
		}
		_ = tw.Flush()
		for _, f := range r.Fanout {
			if f.Note != "" {
				fmt.Fprintf(w, "note (fan-out %d): %s\n", f.Fanout, f.Note)
			}
		}
		fmt.Fprintln(w)
	}
	r.FanoutScale.writeTable(w)
	if len(r.Scenarios) > 0 {
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "scenario\tdeliveries/s\tratio\tp50 ms\tp90 ms\tp99 ms\tp99.9 ms\tmissing\tpeak RSS MiB")
		for _, s := range r.Scenarios {
			ratio := "-"
			if s.RatioOf != "" {
				ratio = fmt.Sprintf("%.2f of %s", s.Ratio, s.RatioOf)
			}
			if s.ID == "a-noindex" && s.RatioOf != "" {
				ratio = fmt.Sprintf("indexer loss %.1f%%", s.IndexerLossPct)
			}
			lat := func(v float64) string {
				if s.Latency.Count == 0 {
					return "-"
				}
				return fmt.Sprintf("%.1f", v)
			}
			fmt.Fprintf(tw, "%s\t%.0f\t%s\t%s\t%s\t%s\t%s\t%d\t%s\n", s.Name, s.Rate, ratio,
				lat(s.Latency.P50), lat(s.Latency.P90), lat(s.Latency.P99), lat(s.Latency.P999), s.Incomplete, rssString(s.PeakRSS))
		}
		_ = tw.Flush()
		fmt.Fprintln(w)
	}
	if len(r.Targets) > 0 {
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "target\tgoal\tmeasured\tmet")
		for _, t := range r.Targets {
			met := "no"
			if t.Met {
				met = "yes"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", t.Name, t.Goal, t.Measured, met)
		}
		_ = tw.Flush()
		fmt.Fprintln(w)
	}
	for _, s := range r.Scenarios {
		if len(s.CPUCores) == 0 {
			continue
		}
		total := 0.0
		perDelivery := map[string]float64{}
		for name, c := range s.CPUCores {
			if name == otherKey {
				continue
			}
			total += c
			perDelivery[name] = perSecond(c*1e6, s.Rate)
		}
		fmt.Fprintf(w, "cpu (%s): benchmark processes kept %.2f cores busy during load: %s; CPU µs per delivery: %s\n", s.ID, total,
			procString(s.CPUCores, "%.2f"), procString(perDelivery, "%.0f"))
	}
	for _, s := range r.Scenarios {
		for _, n := range s.Notes {
			fmt.Fprintf(w, "note (%s): %s\n", s.ID, n)
		}
	}
	for _, p := range r.Problems {
		fmt.Fprintf(w, "problem: %s\n", p)
	}
}

func (r *report) writeFiles(dir string) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode results: %w", err)
	}
	jsonPath := filepath.Join(dir, "latest.json")
	if err := os.WriteFile(jsonPath, append(b, '\n'), 0o644); err != nil {
		return nil, err
	}
	svgPath := filepath.Join(dir, "latency.svg")
	if err := os.WriteFile(svgPath, []byte(r.latencySVG()), 0o644); err != nil {
		return nil, err
	}
	var tbl strings.Builder
	r.writeTable(&tbl)
	txtPath := filepath.Join(dir, "latest.txt")
	if err := os.WriteFile(txtPath, []byte(tbl.String()), 0o644); err != nil {
		return nil, err
	}
	return []string{txtPath, jsonPath, svgPath}, nil
}

// otherCPUNoise is how much CPU outside the benchmark is ignored as noise
// (kernel threads, the odd daemon), in cores.
const otherCPUNoise = 0.15

// otherCPU is the most CPU processes outside the benchmark used during any
// scenario's load, in cores.
func (r *report) otherCPU() float64 {
	m := 0.0
	for _, s := range r.Scenarios {
		m = max(m, s.CPUCores[otherKey])
	}
	return m
}

// loadAvg is the 1-minute load average.
func loadAvg() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	var l float64
	_, _ = fmt.Sscanf(string(b), "%f", &l)
	return l
}

func now() string { return time.Now().UTC().Format(time.RFC3339) }
