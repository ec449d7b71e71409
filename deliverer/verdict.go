package deliverer

import (
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/hookstream/hookstream/sender"
)

// action is what happens to a delivery after an attempt.
type action uint8

const (
	actAck     action = iota // 2xx: finished
	actDrop                  // endpoint deleted: finished, nothing more is sent
	actWait                  // endpoint lookup failed: the same attempt again later
	actRetry                 // wait in the lane, then try again
	actPark                  // wait too long for memory: move to the retries topic
	actDead                  // schedule exhausted or endpoint disabled: dead-letter
	actDisable               // 410 Gone or failing too long: disable the endpoint, dead-letter
)

func (a action) String() string {
	return [...]string{"ack", "drop", "wait", "retry", "park", "dead", "disable"}[a]
}

// policy is what decide needs besides the attempt's facts.
type policy struct {
	schedule Schedule
	park     time.Duration // delays above this park
	// disableAfter disables an endpoint whose every attempt failed for this
	// long (0: never).
	disableAfter time.Duration
	// jitter spreads a scheduled delay; Retry-After is taken as asked.
	jitter func(time.Duration) time.Duration
}

// facts is what decide knows of one attempt and of its lane.
type facts struct {
	kind           outcomeKind
	res            sender.Result // the answer, when kind is outSent
	attempt        int           // attempts made so far, this one included
	firstTry       time.Time     // the record's first attempt
	failingSince   time.Time     // the lane's current run of failures (zero: none)
	lookupFails    int           // failed endpoint lookups in a row, this one included
	disabledReason string        // the endpoint's, when kind is outDisabled
	now            time.Time
}

// verdict is what happens next.
type verdict struct {
	act   action
	delay time.Duration // before the next attempt (actWait, actRetry, actPark)
	// reason goes into the dead letter, or the endpoint's disabled reason.
	reason string
	// metric labels a dead letter: "exhausted" or "disabled".
	metric string
	// failingSince is the lane's run of failures after this attempt.
	failingSince time.Time
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

// lookupWait is how long a lane waits after failed endpoint lookups in a
// row: a second more each time, at most 30 s.
func lookupWait(fails int) time.Duration {
	return min(time.Duration(fails)*time.Second, 30*time.Second)
}

// decide is the one place that turns an attempt into what happens next. It
// is pure: the worker only carries its verdict out. An aborted attempt never
// reaches it: the record stays unfinished for whoever owns it next.
func decide(f facts, p policy) verdict {
	switch f.kind {
	case outDeleted:
		// After a delete no new delivery starts; the record is done.
		return verdict{act: actDrop}
	case outDisabled:
		reason := "endpoint disabled"
		if f.disabledReason != "" {
			reason += ": " + f.disabledReason
		}
		return verdict{act: actDead, reason: reason, metric: "disabled"}
	case outLookupFailed:
		return verdict{act: actWait, delay: lookupWait(f.lookupFails), failingSince: f.failingSince}
	}
	res := f.res
	if res.Outcome == sender.Delivered {
		return verdict{act: actAck}
	}
	since := oldest(f.failingSince, f.firstTry)
	if since.IsZero() {
		since = f.now
	}
	errText := lastError(res)
	switch {
	case res.Outcome == sender.Gone:
		return verdict{act: actDisable, reason: "receiver answered 410 Gone", failingSince: since}
	case p.disableAfter > 0 && f.now.Sub(since) >= p.disableAfter:
		return verdict{act: actDisable, failingSince: since,
			reason: fmt.Sprintf("every attempt failed since %s: last error %s", since.UTC().Format(time.RFC3339), errText)}
	}
	// Failed and Refused alike follow the schedule: a refused destination
	// may resolve elsewhere, and an invalid endpoint may be fixed, before
	// the schedule runs out.
	if f.attempt >= len(p.schedule) {
		return verdict{act: actDead, metric: "exhausted", failingSince: since,
			reason: fmt.Sprintf("retry schedule exhausted after %d attempts: last error: %s", f.attempt, errText)}
	}
	delay := p.schedule[f.attempt]
	if p.jitter != nil {
		delay = p.jitter(delay)
	}
	if res.RetryAfter > 0 && (res.Status == 429 || res.Status == 503) {
		delay = min(res.RetryAfter, max(p.schedule.Max(), minRetryAfterCap))
	}
	if delay > p.park {
		return verdict{act: actPark, delay: delay, failingSince: since}
	}
	return verdict{act: actRetry, delay: delay, failingSince: since}
}

func oldest(ts ...time.Time) time.Time {
	var o time.Time
	for _, t := range ts {
		if !t.IsZero() && (o.IsZero() || t.Before(o)) {
			o = t
		}
	}
	return o
}
