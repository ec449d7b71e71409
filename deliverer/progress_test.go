package deliverer

import (
	"errors"
	"testing"
	"time"
)

func TestProgress(t *testing.T) {
	type step struct {
		after  time.Duration // clock moves on by this first
		held   *bool         // setHeld, if set
		commit bool
	}
	yes, no := true, false
	tests := []struct {
		name                    string
		steps                   []step
		wantUnassigned, wantAge time.Duration
		wantErr                 bool // with the bound 10s
	}{
		{"never assigned", []step{{after: 5 * time.Second}}, 5 * time.Second, 5 * time.Second, false},
		{"never assigned past the bound", []step{{after: 11 * time.Second}}, 11 * time.Second, 11 * time.Second, true},
		{"holding", []step{{after: time.Second, held: &yes}, {after: 30 * time.Second}}, 0, 31 * time.Second, false},
		{"released, counted from the release", []step{{after: time.Second, held: &yes}, {after: 30 * time.Second, held: &no}, {after: 4 * time.Second}},
			4 * time.Second, 35 * time.Second, false},
		{"released past the bound", []step{{held: &yes}, {held: &no}, {after: 12 * time.Second}}, 12 * time.Second, 12 * time.Second, true},
		{"still unassigned after another release", []step{{held: &no}, {after: 12 * time.Second, held: &no}}, 12 * time.Second, 12 * time.Second, true},
		{"commit", []step{{after: 20 * time.Second, held: &yes}, {after: 3 * time.Second, commit: true}, {after: 2 * time.Second}},
			0, 2 * time.Second, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
			p := newProgress(func() time.Time { return now })
			for _, s := range tt.steps {
				now = now.Add(s.after)
				if s.held != nil {
					p.setHeld(*s.held)
				}
				if s.commit {
					p.committed()
				}
			}
			if got := p.sinceAssignment(); got != tt.wantUnassigned {
				t.Errorf("sinceAssignment = %v, want %v", got, tt.wantUnassigned)
			}
			if got := p.sinceCommit(); got != tt.wantAge {
				t.Errorf("sinceCommit = %v, want %v", got, tt.wantAge)
			}
			err := p.check(10 * time.Second)
			if (err != nil) != tt.wantErr || err != nil && !errors.Is(err, ErrUnassigned) {
				t.Errorf("check = %v, want error %v", err, tt.wantErr)
			}
		})
	}
}
