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
			p := &fakeProbe{state: "Stable"}
			check := w.Check(bound, p)
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
				p.lag, p.err = s.lag, nil
				if s.lagFails {
					p.err = errors.New("kafka unreachable")
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

type fakeProbe struct {
	lag   int64
	state string
	err   error
}

func (p *fakeProbe) Lag(context.Context, map[string][]int32) (int64, error) { return p.lag, p.err }
func (p *fakeProbe) State(context.Context) (string, error)                  { return p.state, p.err }

func TestWatchRebalancing(t *testing.T) {
	const bound = 10 * time.Second
	type step struct {
		after   time.Duration
		state   string
		wantErr bool
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"stable", []step{{state: "Stable"}, {after: 20 * time.Second, state: "Stable"}}},
		{"an ordinary rebalance", []step{{state: "Stable"}, {after: time.Second, state: "PreparingRebalance"},
			{after: 5 * time.Second, state: "CompletingRebalance"}, {after: 3 * time.Second, state: "Stable"}}},
		{"stuck", []step{{state: "PreparingRebalance"}, {after: 5 * time.Second, state: "PreparingRebalance"},
			{after: 6 * time.Second, state: "PreparingRebalance", wantErr: true}}},
		{"stuck between the two rebalancing states", []step{{state: "PreparingRebalance"}, {after: 6 * time.Second, state: "CompletingRebalance"},
			{after: 6 * time.Second, state: "PreparingRebalance", wantErr: true}}},
		{"settled, then rebalancing again: counted afresh", []step{{state: "PreparingRebalance"}, {after: 9 * time.Second, state: "Stable"},
			{after: time.Second, state: "PreparingRebalance"}, {after: 9 * time.Second, state: "PreparingRebalance"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
			w := New(func() time.Time { return now })
			w.Assigned(map[string][]int32{"t": {0}})
			p := &fakeProbe{}
			check := w.Check(bound, p)
			for i, s := range tt.steps {
				now = now.Add(s.after)
				p.state = s.state
				err := check(context.Background())
				if s.wantErr != (err != nil) || err != nil && !errors.Is(err, ErrRebalancing) {
					t.Errorf("step %d: check = %v, want ErrRebalancing %v", i, err, s.wantErr)
				}
			}
		})
	}
}
