package deliverer

import "time"

// LongestParking is how long a record may stay in the retries topic under
// the schedule s and disableAfter: an endpoint failing without pause keeps
// its lane parked until it is disabled (or, with disableAfter 0, for a whole
// schedule), plus one more backoff, all with the schedule's jitter. The
// retries topic's retention must be longer, or parked deliveries are
// deleted before they are sent.
func LongestParking(s Schedule, disableAfter time.Duration) time.Duration {
	var total, longest time.Duration
	for _, d := range s {
		total += d
		longest = max(longest, d)
	}
	return (max(total, disableAfter) + longest) * 6 / 5
}
