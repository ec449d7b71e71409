package main

import (
	"math"
	"slices"
	"time"
)

// sample is one webhook received by a receiver.
type sample struct {
	endpoint int32
	recv     int64 // unix ns when the receiver read the body
	latency  int64 // ns from publish (the time written into the event) to recv
}

// window is a time interval [from, to) in unix ns.
type window struct{ from, to int64 }

func (w window) seconds() float64 { return float64(w.to-w.from) / 1e9 }

// middle returns the interval between the q-th and (1-q)-th quantile of the
// receive times: the steady part of a run with a fixed amount of work, without
// its ramp-up and tail.
func middle(ss []sample, q float64) window {
	if len(ss) < 2 {
		return window{}
	}
	ts := make([]int64, len(ss))
	for i, s := range ss {
		ts[i] = s.recv
	}
	slices.Sort(ts)
	lo := int(q * float64(len(ts)-1))
	hi := int((1 - q) * float64(len(ts)-1))
	return window{ts[lo], ts[hi]}
}

// latencyStats summarises latencies in milliseconds.
type latencyStats struct {
	Count int     `json:"count"`
	P50   float64 `json:"p50_ms"`
	P90   float64 `json:"p90_ms"`
	P99   float64 `json:"p99_ms"`
	P999  float64 `json:"p99_9_ms"`
	Max   float64 `json:"max_ms"`
	// Curve holds the latency at each of curvePoints, for the chart.
	Curve []float64 `json:"curve_ms,omitempty"`
}

// curvePoints are the percentiles drawn in the latency chart, spaced evenly
// in "nines" (-log10(1-p)) from p0 to p99.9 plus the maximum.
var curvePoints = func() []float64 {
	var ps []float64
	for i := 0; i <= 30; i++ {
		ps = append(ps, 1-math.Pow(10, -float64(i)/10))
	}
	return ps
}()

// summarise computes latency percentiles of the samples whose receive time
// is in w and that keep returns true for (nil: all).
func summarise(ss []sample, w window, keep func(sample) bool) (int, latencyStats) {
	var lat []int64
	for _, s := range ss {
		if s.recv < w.from || s.recv >= w.to {
			continue
		}
		if keep != nil && !keep(s) {
			continue
		}
		lat = append(lat, s.latency)
	}
	return len(lat), percentiles(lat)
}

func percentiles(lat []int64) latencyStats {
	if len(lat) == 0 {
		return latencyStats{}
	}
	slices.Sort(lat)
	at := func(p float64) float64 {
		i := int(p*float64(len(lat))+0.5) - 1
		i = max(0, min(i, len(lat)-1))
		return ms(lat[i])
	}
	st := latencyStats{
		Count: len(lat),
		P50:   at(0.50),
		P90:   at(0.90),
		P99:   at(0.99),
		P999:  at(0.999),
		Max:   ms(lat[len(lat)-1]),
	}
	for _, p := range curvePoints {
		st.Curve = append(st.Curve, at(p))
	}
	st.Curve = append(st.Curve, st.Max)
	return st
}

func ms(ns int64) float64 { return float64(ns) / float64(time.Millisecond) }

// perSecond is n/seconds, 0 for an empty interval (JSON has no Inf).
func perSecond(n, seconds float64) float64 {
	if seconds <= 0 {
		return 0
	}
	return n / seconds
}
