package deliverer

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hookstream/hookstream/internal/sender"
)

func TestDecide(t *testing.T) {
	sched := Schedule{0, 5 * time.Second, 5 * time.Minute, 2 * time.Hour}
	p := policy{schedule: sched, park: 30 * time.Second}
	failed := sender.Result{Outcome: sender.Failed, Status: 500}
	tests := []struct {
		name    string
		res     sender.Result
		attempt int
		act     action
		delay   time.Duration
	}{
		{"2xx", sender.Result{Outcome: sender.Delivered, Status: 204}, 1, actAck, 0},
		{"2xx on last attempt", sender.Result{Outcome: sender.Delivered, Status: 200}, 4, actAck, 0},
		{"500 first attempt: short wait in lane", failed, 1, actRetry, 5 * time.Second},
		{"500 second attempt: long wait parks", failed, 2, actPark, 5 * time.Minute},
		{"500 third attempt", failed, 3, actPark, 2 * time.Hour},
		{"500 last attempt: dead", failed, 4, actDead, 0},
		{"beyond the schedule: dead", failed, 9, actDead, 0},
		{"timeout", sender.Result{Outcome: sender.Failed, Err: sender.ErrTimeout}, 1, actRetry, 5 * time.Second},
		{"refused follows the schedule", sender.Result{Outcome: sender.Refused, Err: sender.ErrInvalidRequest}, 1, actRetry, 5 * time.Second},
		{"refused exhausted", sender.Result{Outcome: sender.Refused}, 4, actDead, 0},
		{"410 disables", sender.Result{Outcome: sender.Gone, Status: 410}, 1, actDisable, 0},
		{"410 on last attempt still disables", sender.Result{Outcome: sender.Gone, Status: 410}, 4, actDisable, 0},
		{"429 Retry-After overrides", sender.Result{Outcome: sender.Failed, Status: 429, RetryAfter: 10 * time.Second}, 1, actRetry, 10 * time.Second},
		{"503 Retry-After can park", sender.Result{Outcome: sender.Failed, Status: 503, RetryAfter: 40 * time.Second}, 1, actPark, 40 * time.Second},
		{"Retry-After capped at the longest step", sender.Result{Outcome: sender.Failed, Status: 429, RetryAfter: 5 * time.Hour}, 1, actPark, 2 * time.Hour},
		{"Retry-After shortens", sender.Result{Outcome: sender.Failed, Status: 503, RetryAfter: time.Second}, 3, actRetry, time.Second},
		{"Retry-After ignored on 500", sender.Result{Outcome: sender.Failed, Status: 500, RetryAfter: time.Second}, 2, actPark, 5 * time.Minute},
		{"Retry-After does not extend the schedule", sender.Result{Outcome: sender.Failed, Status: 429, RetryAfter: time.Second}, 4, actDead, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			act, delay := decide(tt.res, tt.attempt, p)
			if act != tt.act || delay != tt.delay {
				t.Errorf("decide = %s after %s, want %s after %s", act, delay, tt.act, tt.delay)
			}
		})
	}
}

func TestDecideRetryAfterCapShortSchedule(t *testing.T) {
	// With a schedule of short steps a receiver may still ask for up to 1h.
	p := policy{schedule: Schedule{0, 50 * time.Millisecond}, park: time.Second}
	act, delay := decide(sender.Result{Outcome: sender.Failed, Status: 429, RetryAfter: 3 * time.Hour}, 1, p)
	if act != actPark || delay != time.Hour {
		t.Errorf("decide = %s after %s, want park after 1h", act, delay)
	}
}

func TestJitter(t *testing.T) {
	p := policy{schedule: Schedule{0, 100 * time.Second}, park: time.Hour, jitter: jitter20}
	lo, hi := time.Duration(1<<62), time.Duration(0)
	for range 2000 {
		_, d := decide(sender.Result{Outcome: sender.Failed, Status: 500}, 1, p)
		lo, hi = min(lo, d), max(hi, d)
	}
	if lo < 80*time.Second || hi > 120*time.Second {
		t.Errorf("jittered delays span [%s, %s], want within [80s, 120s]", lo, hi)
	}
	if hi-lo < 20*time.Second {
		t.Errorf("jittered delays span [%s, %s]: hardly any jitter", lo, hi)
	}
	if d := jitter20(0); d != 0 {
		t.Errorf("jitter20(0) = %s", d)
	}
}

func TestParseSchedule(t *testing.T) {
	tests := []struct {
		in      string
		want    Schedule
		errPart string
	}{
		{"0s,5s,5m,30m,2h,5h,10h,10h", DefaultSchedule, ""},
		{" 0s , 50ms ", Schedule{0, 50 * time.Millisecond}, ""},
		{"0s", Schedule{0}, ""},
		{"1s,5s", nil, `item 1 "1s": the first attempt is immediate`},
		{"", nil, "empty"},
		{"0s,5s,5x", nil, `item 3 "5x"`},
		{"0s,,5s", nil, `item 2 ""`},
		{"0s,-5s", nil, `item 2 "-5s": negative`},
	}
	for _, tt := range tests {
		got, err := ParseSchedule(tt.in)
		if tt.errPart != "" {
			if !errors.Is(err, ErrInvalidSchedule) || !strings.Contains(err.Error(), tt.errPart) {
				t.Errorf("ParseSchedule(%q) error = %v, want ErrInvalidSchedule containing %q", tt.in, err, tt.errPart)
			}
			continue
		}
		if err != nil || got.String() != tt.want.String() {
			t.Errorf("ParseSchedule(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
}

func TestTracker(t *testing.T) {
	tr := newTracker()
	if _, ok := tr.commitPoint(); ok {
		t.Fatal("empty tracker has a commit point")
	}
	m := map[int64]*ticket{}
	for _, o := range []int64{3, 4, 7, 8} { // gaps: transaction markers
		m[o] = tr.add(o)
	}
	steps := []struct {
		finish int64
		want   int64
	}{{4, 3}, {8, 3}, {3, 7}, {7, 9}}
	for _, s := range steps {
		tr.finish(m[s.finish])
		if got, _ := tr.commitPoint(); got != s.want {
			t.Errorf("after finishing %d: commit point %d, want %d", s.finish, got, s.want)
		}
	}
}
