package deliverer

import (
	"testing"
	"time"
)

func TestLongestParking(t *testing.T) {
	h := time.Hour
	tests := []struct {
		name         string
		s            Schedule
		disableAfter time.Duration
		want         time.Duration
	}{
		{"defaults: disabled after 5 days", DefaultSchedule, DefaultDisableAfter, (120*h + 10*h) * 6 / 5},
		{"never disabled: one schedule", Schedule{0, h, 2 * h}, 0, (3*h + 2*h) * 6 / 5},
		{"schedule longer than disable-after", Schedule{0, 10 * h, 10 * h}, h, (20*h + 10*h) * 6 / 5},
	}
	for _, tt := range tests {
		if got := LongestParking(tt.s, tt.disableAfter); got != tt.want {
			t.Errorf("%s: LongestParking = %v, want %v", tt.name, got, tt.want)
		}
	}
	if got := LongestParking(DefaultSchedule, DefaultDisableAfter); got >= 14*24*h {
		t.Errorf("the default retries retention (14 days) is not longer than the default parking %v", got)
	}
}
