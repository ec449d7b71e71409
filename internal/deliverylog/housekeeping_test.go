package deliverylog

import (
	"testing"
	"time"
)

// TestHousekeeping: a run writes a key's expiry when its rounded time
// moves and trims a list at most once a minute; a new run (as after a
// flush) forgets both.
func TestHousekeeping(t *testing.T) {
	now := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	h := newHousekeeping()
	steps := []struct {
		name     string
		h        *housekeeping
		expire   time.Time
		want     bool
		wantAt   time.Time
		trimAt   time.Time
		wantTrim bool
	}{
		{"first write", h, now.Add(time.Second), true, now.Add(5 * time.Minute), now, true},
		{"same step", h, now.Add(4 * time.Minute), false, now.Add(5 * time.Minute), now.Add(59 * time.Second), false},
		{"next step", h, now.Add(5*time.Minute + time.Millisecond), true, now.Add(10 * time.Minute), now.Add(time.Minute), true},
		{"new run", newHousekeeping(), now.Add(time.Second), true, now.Add(5 * time.Minute), now, true},
		{"no run (AddAll)", nil, now.Add(time.Second), true, now.Add(5 * time.Minute), now, true},
	}
	for _, s := range steps {
		at, ok := s.h.expire("k", s.expire)
		if ok != s.want || !at.Equal(s.wantAt) {
			t.Errorf("%s: expire = %v, %v; want %v, %v", s.name, at, ok, s.wantAt, s.want)
		}
		if got := s.h.trim("k", s.trimAt); got != s.wantTrim {
			t.Errorf("%s: trim = %v, want %v", s.name, got, s.wantTrim)
		}
	}
}
