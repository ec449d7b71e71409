package deliverer

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/hookstream/hookstream/internal/sender"
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

// action is what happens to a delivery after an attempt.
type action uint8

const (
	actAck     action = iota // 2xx: finished
	actRetry                 // wait in the lane, then try again
	actPark                  // wait too long for memory: move to the retries topic
	actDead                  // schedule exhausted: dead-letter
	actDisable               // 410 Gone: disable the endpoint and dead-letter
)

func (a action) String() string {
	return [...]string{"ack", "retry", "park", "dead", "disable"}[a]
}

// policy is what decide needs besides the attempt's result.
type policy struct {
	schedule Schedule
	park     time.Duration // delays above this park
	// jitter spreads a scheduled delay; Retry-After is taken as asked.
	jitter func(time.Duration) time.Duration
}

// jitter20 returns d ± up to 20%, so endpoints that failed together do not
// retry in lockstep.
func jitter20(d time.Duration) time.Duration {
	if d <= 0 {
		return d
	}
	return d + time.Duration((rand.Float64()*0.4-0.2)*float64(d))
}

// minRetryAfterCap is the least a receiver's Retry-After may ask for, however
// short the schedule's longest step.
const minRetryAfterCap = time.Hour

// decide is the one place that turns an attempt's result into what happens
// next. attempt counts the attempts made so far, this one included. The
// delay is the wait before the next attempt (for actRetry and actPark).
func decide(res sender.Result, attempt int, p policy) (action, time.Duration) {
	switch res.Outcome {
	case sender.Delivered:
		return actAck, 0
	case sender.Gone:
		return actDisable, 0
	}
	// Failed and Refused alike follow the schedule: a refused destination
	// may resolve elsewhere, and an invalid endpoint may be fixed, before
	// the schedule runs out.
	if attempt >= len(p.schedule) {
		return actDead, 0
	}
	delay := p.schedule[attempt]
	if p.jitter != nil {
		delay = p.jitter(delay)
	}
	if res.RetryAfter > 0 && (res.Status == 429 || res.Status == 503) {
		delay = min(res.RetryAfter, max(p.schedule.Max(), minRetryAfterCap))
	}
	if delay > p.park {
		return actPark, delay
	}
	return actRetry, delay
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
