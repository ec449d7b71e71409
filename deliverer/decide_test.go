package deliverer

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hookstream/hookstream/sender"
)

func TestDecide(t *testing.T) {
	sched := Schedule{0, 5 * time.Second, 5 * time.Minute, 2 * time.Hour}
	p := policy{schedule: sched, park: 30 * time.Second, disableAfter: 24 * time.Hour}
	now := time.Date(2026, 3, 4, 12, 0, 0, 0, time.UTC)
	hourAgo, dayAgo := now.Add(-time.Hour), now.Add(-25*time.Hour)
	failed := sender.Result{Outcome: sender.Failed, Status: 500}
	sent := func(res sender.Result, attempt int) facts {
		return facts{kind: outSent, res: res, attempt: attempt, firstTry: now, now: now}
	}
	with := func(f facts, change func(*facts)) facts { change(&f); return f }
	tests := []struct {
		name   string
		f      facts
		act    action
		delay  time.Duration
		reason string    // a part of the verdict's reason
		since  time.Time // the lane's run of failures after it
	}{
		{"2xx", sent(sender.Result{Outcome: sender.Delivered, Status: 204}, 1), actAck, 0, "", time.Time{}},
		{"2xx on last attempt", sent(sender.Result{Outcome: sender.Delivered, Status: 200}, 4), actAck, 0, "", time.Time{}},
		{"2xx ends a run of failures", with(sent(sender.Result{Outcome: sender.Delivered, Status: 200}, 3), func(f *facts) { f.failingSince = hourAgo }), actAck, 0, "", time.Time{}},
		{"500 first attempt: short wait in lane", sent(failed, 1), actRetry, 5 * time.Second, "", now},
		{"500 second attempt: long wait parks", sent(failed, 2), actPark, 5 * time.Minute, "", now},
		{"500 third attempt", sent(failed, 3), actPark, 2 * time.Hour, "", now},
		{"500 last attempt: dead", sent(failed, 4), actDead, 0, "retry schedule exhausted after 4 attempts: last error: HTTP 500", now},
		{"beyond the schedule: dead", sent(failed, 9), actDead, 0, "exhausted after 9 attempts", now},
		{"timeout", sent(sender.Result{Outcome: sender.Failed, Err: sender.ErrTimeout}, 1), actRetry, 5 * time.Second, "", now},
		{"refused follows the schedule", sent(sender.Result{Outcome: sender.Refused, Err: sender.ErrInvalidRequest}, 1), actRetry, 5 * time.Second, "", now},
		{"refused exhausted", sent(sender.Result{Outcome: sender.Refused}, 4), actDead, 0, "exhausted", now},
		{"410 disables", sent(sender.Result{Outcome: sender.Gone, Status: 410}, 1), actDisable, 0, "410 Gone", now},
		{"410 on last attempt still disables", sent(sender.Result{Outcome: sender.Gone, Status: 410}, 4), actDisable, 0, "410 Gone", now},
		{"429 Retry-After overrides", sent(sender.Result{Outcome: sender.Failed, Status: 429, RetryAfter: 10 * time.Second}, 1), actRetry, 10 * time.Second, "", now},
		{"503 Retry-After can park", sent(sender.Result{Outcome: sender.Failed, Status: 503, RetryAfter: 40 * time.Second}, 1), actPark, 40 * time.Second, "", now},
		{"Retry-After capped at the longest step", sent(sender.Result{Outcome: sender.Failed, Status: 429, RetryAfter: 5 * time.Hour}, 1), actPark, 2 * time.Hour, "", now},
		{"Retry-After shortens", sent(sender.Result{Outcome: sender.Failed, Status: 503, RetryAfter: time.Second}, 3), actRetry, time.Second, "", now},
		{"Retry-After ignored on 500", sent(sender.Result{Outcome: sender.Failed, Status: 500, RetryAfter: time.Second}, 2), actPark, 5 * time.Minute, "", now},
		{"Retry-After does not extend the schedule", sent(sender.Result{Outcome: sender.Failed, Status: 429, RetryAfter: time.Second}, 4), actDead, 0, "exhausted", now},
		// The disable rule: the lane's run of failures, or the record's first
		// try, whichever is older, against disableAfter.
		{"failing an hour: retry", with(sent(failed, 1), func(f *facts) { f.failingSince = hourAgo }), actRetry, 5 * time.Second, "", hourAgo},
		{"failing past disableAfter: disable", with(sent(failed, 2), func(f *facts) { f.failingSince = dayAgo }), actDisable, 0, "every attempt failed since 2026-03-03T11:00:00Z: last error HTTP 500", dayAgo},
		{"record first tried past disableAfter: disable", with(sent(failed, 2), func(f *facts) { f.firstTry = dayAgo }), actDisable, 0, "every attempt failed since", dayAgo},
		{"disable wins over exhausted", with(sent(failed, 4), func(f *facts) { f.failingSince = dayAgo }), actDisable, 0, "every attempt failed", dayAgo},
		// Outcomes that are not an answer from the receiver.
		{"endpoint deleted: dropped", facts{kind: outDeleted, failingSince: hourAgo, now: now}, actDrop, 0, "", time.Time{}},
		{"endpoint disabled: dead", facts{kind: outDisabled, disabledReason: "by its owner", failingSince: hourAgo, now: now}, actDead, 0, "endpoint disabled: by its owner", time.Time{}},
		{"endpoint disabled, no reason", facts{kind: outDisabled, now: now}, actDead, 0, "endpoint disabled", time.Time{}},
		{"lookup failed once: wait 1s", facts{kind: outLookupFailed, lookupFails: 1, failingSince: hourAgo, now: now}, actWait, time.Second, "", hourAgo},
		{"lookup failed 5 times: wait 5s", facts{kind: outLookupFailed, lookupFails: 5, now: now}, actWait, 5 * time.Second, "", time.Time{}},
		{"lookup failing long: wait capped at 30s", facts{kind: outLookupFailed, lookupFails: 100, now: now}, actWait, 30 * time.Second, "", time.Time{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := decide(tt.f, p)
			if v.act != tt.act || v.delay != tt.delay {
				t.Errorf("decide = %s after %s, want %s after %s", v.act, v.delay, tt.act, tt.delay)
			}
			if !strings.Contains(v.reason, tt.reason) || (tt.reason == "") != (v.reason == "") {
				t.Errorf("reason = %q, want one containing %q", v.reason, tt.reason)
			}
			if !v.failingSince.Equal(tt.since) {
				t.Errorf("failingSince = %s, want %s", v.failingSince, tt.since)
			}
		})
	}
	t.Run("disableAfter 0 never disables", func(t *testing.T) {
		p := p
		p.disableAfter = 0
		if v := decide(with(sent(failed, 1), func(f *facts) { f.failingSince = dayAgo }), p); v.act != actRetry {
			t.Errorf("decide = %s, want retry", v.act)
		}
	})
}

func TestDecideRetryAfterCapShortSchedule(t *testing.T) {
	// With a schedule of short steps a receiver may still ask for up to 1h.
	p := policy{schedule: Schedule{0, 50 * time.Millisecond}, park: time.Second}
	v := decide(facts{kind: outSent, res: sender.Result{Outcome: sender.Failed, Status: 429, RetryAfter: 3 * time.Hour}, attempt: 1}, p)
	if v.act != actPark || v.delay != time.Hour {
		t.Errorf("decide = %s after %s, want park after 1h", v.act, v.delay)
	}
}

func TestJitter(t *testing.T) {
	p := policy{schedule: Schedule{0, 100 * time.Second}, park: time.Hour, jitter: jitter20}
	lo, hi := time.Duration(1<<62), time.Duration(0)
	for range 2000 {
		d := decide(facts{kind: outSent, res: sender.Result{Outcome: sender.Failed, Status: 500}, attempt: 1}, p).delay
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
