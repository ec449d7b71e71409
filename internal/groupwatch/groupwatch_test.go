package groupwatch

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestWatch(t *testing.T) {
	const bound = 10 * time.Second
	p0 := map[string][]int32{"t": {0}}
	type step struct {
		after    time.Duration // the clock moves on by this first
		assign   map[string][]int32
		release  map[string][]int32
		commit   bool
		check    bool  // run the check, the lag being lag
		lag      int64 // what the lag reads at this step's check
		wantErr  error // of this step's check
		lagFails bool
	}
	tests := []struct {
		name                    string
		steps                   []step
		wantUnassigned, wantAge time.Duration
	}{
		{"never assigned, within the bound", []step{{after: 5 * time.Second, check: true}}, 5 * time.Second, 5 * time.Second},
		{"never assigned past the bound", []step{{after: 11 * time.Second, check: true, wantErr: ErrUnassigned}}, 11 * time.Second, 11 * time.Second},
		{"holding, idle: lag steady", []step{
			{after: time.Second, assign: p0, check: true, lag: 1},
			{after: 30 * time.Second, check: true, lag: 1},
			{after: 30 * time.Second, check: true, lag: 1},
		}, 0, 61 * time.Second},
		{"released, counted from the release", []step{
			{after: time.Second, assign: p0},
			{after: 30 * time.Second, release: p0},
			{after: 4 * time.Second, check: true},
		}, 4 * time.Second, 35 * time.Second},
		{"released past the bound", []step{{assign: p0}, {release: p0}, {after: 12 * time.Second, check: true, wantErr: ErrUnassigned}}, 12 * time.Second, 12 * time.Second},
		{"one partition of two released: still holding", []step{
			{assign: map[string][]int32{"t": {0, 1}}},
			{release: p0},
			{after: 12 * time.Second, check: true},
		}, 0, 12 * time.Second},
		{"lag grows without commits past the bound", []step{
			{assign: p0, check: true, lag: 5},
			{after: 2 * time.Second, check: true, lag: 9},
			{after: 5 * time.Second, check: true, lag: 20},
			{after: 6 * time.Second, check: true, lag: 30, wantErr: ErrStalled},
		}, 0, 13 * time.Second},
		{"lag grew, but not for the bound yet", []step{
			{assign: p0, after: 30 * time.Second, check: true, lag: 5},
			{after: 2 * time.Second, check: true, lag: 9},
			{after: 9 * time.Second, check: true, lag: 20},
		}, 0, 41 * time.Second},
		{"a commit starts afresh", []step{
			{assign: p0, check: true, lag: 5},
			{after: 2 * time.Second, check: true, lag: 9},
			{after: 9 * time.Second, commit: true},
			{after: time.Second, check: true, lag: 30},
			{after: 5 * time.Second, check: true, lag: 40},
		}, 0, 6 * time.Second},
		{"a new assignment starts afresh", []step{
			{assign: p0, check: true, lag: 5},
			{after: 2 * time.Second, check: true, lag: 9},
			{after: 9 * time.Second, assign: map[string][]int32{"t": {1}}, check: true, lag: 100},
			{after: 5 * time.Second, check: true, lag: 100},
		}, 0, 16 * time.Second},
		{"lag unreadable passes", []step{
			{assign: p0, check: true, lag: 5},
			{after: 2 * time.Second, check: true, lag: 9},
			{after: 20 * time.Second, check: true, lagFails: true},
		}, 0, 22 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
			w := New(func() time.Time { return now })
			var lag int64
			var lagErr error
			check := w.Check(bound, func(context.Context, map[string][]int32) (int64, error) { return lag, lagErr })
			for i, s := range tt.steps {
				now = now.Add(s.after)
				if s.assign != nil {
					w.Assigned(s.assign)
				}
				if s.release != nil {
					w.Released(s.release)
				}
				if s.commit {
					w.Committed()
				}
				if !s.check {
					continue
				}
				lag, lagErr = s.lag, nil
				if s.lagFails {
					lagErr = errors.New("kafka unreachable")
				}
				err := check(context.Background())
				if s.wantErr == nil && err != nil || s.wantErr != nil && !errors.Is(err, s.wantErr) {
					t.Errorf("step %d: check = %v, want %v", i, err, s.wantErr)
				}
			}
			if got := w.SinceAssignment(); got != tt.wantUnassigned {
				t.Errorf("SinceAssignment = %v, want %v", got, tt.wantUnassigned)
			}
			if got := w.SinceCommit(); got != tt.wantAge {
				t.Errorf("SinceCommit = %v, want %v", got, tt.wantAge)
			}
		})
	}
}
