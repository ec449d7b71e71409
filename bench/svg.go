package main

import (
	"fmt"
	"html"
	"math"
	"strings"
)

// latencySVG draws publish-to-receive latency against percentile for every
// scenario that measured latency: x in "nines" (p0, p90, p99, p99.9), y on
// a log scale. Hand-written so the benchmark needs no plotting library.
func (r *report) latencySVG() string {
	const (
		width, height = 760, 460
		left, right   = 70, 210
		top, bottom   = 40, 60
		plotW         = width - left - right
		plotH         = height - top - bottom
	)
	type series struct {
		name  string
		curve []float64
	}
	var ss []series
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, s := range r.Scenarios {
		if len(s.Latency.Curve) != len(curvePoints)+1 {
			continue
		}
		ss = append(ss, series{s.Name, s.Latency.Curve})
		for _, v := range s.Latency.Curve {
			v = math.Max(v, 0.01)
			lo, hi = math.Min(lo, v), math.Max(hi, v)
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", width, height, width, height)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="white"/>`+"\n", width, height)
	fmt.Fprintf(&b, `<text x="%d" y="22" font-size="15" font-weight="bold">Publish-to-receive latency by percentile</text>`+"\n", left)
	fmt.Fprintf(&b, `<text x="%d" y="%d" fill="#555">%s, %d cores, %s, %s</text>`+"\n", left, height-12,
		html.EscapeString(r.Machine.CPU), r.Machine.Cores, html.EscapeString(r.Machine.Go), html.EscapeString(r.Date))
	if len(ss) == 0 {
		fmt.Fprintf(&b, `<text x="%d" y="%d">no scenario measured latency</text>`+"\n</svg>\n", left, top+plotH/2)
		return b.String()
	}
	// Decades spanning the data.
	ylo := math.Pow(10, math.Floor(math.Log10(lo)))
	yhi := math.Pow(10, math.Ceil(math.Log10(hi)))
	if yhi <= ylo {
		yhi = ylo * 10
	}
	const xmax = 3.3 // p99.9 is 3 nines; the maximum is drawn a little further
	x := func(n float64) float64 { return left + n/xmax*plotW }
	y := func(v float64) float64 {
		v = math.Max(v, ylo)
		return top + plotH - (math.Log10(v)-math.Log10(ylo))/(math.Log10(yhi)-math.Log10(ylo))*plotH
	}
	// Grid and axes.
	for d := ylo; d <= yhi*1.0001; d *= 10 {
		fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#ddd"/>`+"\n", left, left+plotW, y(d), y(d))
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end">%s</text>`+"\n", left-6, y(d)+4, fmtMS(d))
	}
	for i, label := range []string{"p0", "p90", "p99", "p99.9"} {
		fmt.Fprintf(&b, `<line x1="%.1f" x2="%.1f" y1="%d" y2="%d" stroke="#ddd"/>`+"\n", x(float64(i)), x(float64(i)), top, top+plotH)
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle">%s</text>`+"\n", x(float64(i)), top+plotH+18, label)
	}
	fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle">max</text>`+"\n", x(xmax), top+plotH+18)
	fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#333"/>`+"\n", left, top, plotW, plotH)
	fmt.Fprintf(&b, `<text x="16" y="%d" transform="rotate(-90 16 %d)" text-anchor="middle">latency (ms, log scale)</text>`+"\n", top+plotH/2, top+plotH/2)
	fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle">percentile</text>`+"\n", left+plotW/2, top+plotH+36)

	colors := []string{"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"}
	for i, s := range ss {
		c := colors[i%len(colors)]
		var pts []string
		for j, v := range s.curve[:len(curvePoints)] {
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(float64(j)/10), y(v)))
		}
		pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(xmax), y(s.curve[len(s.curve)-1])))
		fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="2" points="%s"/>`+"\n", c, strings.Join(pts, " "))
		ly := top + 10 + i*20
		fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%d" y2="%d" stroke="%s" stroke-width="3"/>`+"\n", left+plotW+12, left+plotW+32, ly, ly, c)
		fmt.Fprintf(&b, `<text x="%d" y="%d">%s</text>`+"\n", left+plotW+38, ly+4, html.EscapeString(s.name))
	}
	b.WriteString("</svg>\n")
	return b.String()
}

func fmtMS(v float64) string {
	switch {
	case v >= 1000:
		return fmt.Sprintf("%gs", v/1000)
	case v >= 1:
		return fmt.Sprintf("%gms", v)
	default:
		return fmt.Sprintf("%gms", math.Round(v*1000)/1000)
	}
}
