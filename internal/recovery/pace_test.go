package recovery

import (
	"math"
	"testing"
	"time"
)

// TestPace: a job's batches and their interval keep its rate, below one
// record a step as above (a rate of 1 wrote 5 a second with 200 ms steps).
func TestPace(t *testing.T) {
	tests := []struct {
		rate      int
		batch     int
		intervalM float64 // ms
	}{
		{1, 1, 1000},
		{3, 1, 333.33},
		{7, 1, 142.86},
		{12, 2, 166.67},
		{DefaultRate, int(math.Round(DefaultRate * 0.2)), 200},
		{MaxRate, MaxRate / 5, 200},
	}
	for _, tt := range tests {
		batch, interval := pace(tt.rate, 200*time.Millisecond)
		got := float64(interval) / float64(time.Millisecond)
		if batch != tt.batch || math.Abs(got-tt.intervalM) > 0.01 {
			t.Errorf("pace(%d, 200ms) = %d every %.2f ms, want %d every %.2f ms", tt.rate, batch, got, tt.batch, tt.intervalM)
		}
		if perSecond := float64(batch) / interval.Seconds(); math.Abs(perSecond-float64(tt.rate)) > 0.01*float64(tt.rate) {
			t.Errorf("pace(%d): %.2f records/s", tt.rate, perSecond)
		}
	}
}
