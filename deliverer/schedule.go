package deliverer

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/hookstream/hookstream/sender"
)

// Schedule is the delay before each attempt: Schedule[k] before attempt
// k+1. Schedule[0] is 0: the first attempt goes out as soon as the record
// is read. Its length is the number of attempts a delivery gets before it
// is dead-lettered.
type Schedule []time.Duration

// DefaultSchedule is "0s,5s,5m,30m,2h,5h,10h,10h": 8 attempts over about 28
// hours (before jitter).
var DefaultSchedule = Schedule{0, 5 * time.Second, 5 * time.Minute, 30 * time.Minute,
	2 * time.Hour, 5 * time.Hour, 10 * time.Hour, 10 * time.Hour}

// ErrInvalidSchedule is wrapped by ParseSchedule.
var ErrInvalidSchedule = errors.New("invalid retry schedule")

// ParseSchedule parses a comma-separated list of Go durations
// ("0s,5s,5m,30m"). Errors name the 1-based item: `item 3 "5x": ...`.
func ParseSchedule(s string) (Schedule, error) {
	if strings.TrimSpace(s) == "" {
		return nil, fmt.Errorf("%w: empty", ErrInvalidSchedule)
	}
	items := strings.Split(s, ",")
	out := make(Schedule, 0, len(items))
	for i, item := range items {
		item = strings.TrimSpace(item)
		d, err := time.ParseDuration(item)
		switch {
		case err != nil:
			return nil, fmt.Errorf("%w: item %d %q: not a duration like 5s or 30m", ErrInvalidSchedule, i+1, item)
		case d < 0:
			return nil, fmt.Errorf("%w: item %d %q: negative", ErrInvalidSchedule, i+1, item)
		case i == 0 && d != 0:
			return nil, fmt.Errorf("%w: item 1 %q: the first attempt is immediate, so the schedule starts with 0s", ErrInvalidSchedule, item)
		}
		out = append(out, d)
	}
	return out, nil
}

// String formats s as ParseSchedule reads it.
func (s Schedule) String() string {
	parts := make([]string, len(s))
	for i, d := range s {
		parts[i] = d.String()
	}
	return strings.Join(parts, ",")
}

// Max is the longest step.
func (s Schedule) Max() time.Duration {
	var m time.Duration
	for _, d := range s {
		m = max(m, d)
	}
	return m
}

// lastError describes a failed attempt for dead letters and logs.
func lastError(res sender.Result) string {
	switch {
	case res.Err != nil && res.Status != 0:
		return fmt.Sprintf("HTTP %d: %v", res.Status, res.Err)
	case res.Err != nil:
		return res.Err.Error()
	default:
		return fmt.Sprintf("HTTP %d", res.Status)
	}
}
