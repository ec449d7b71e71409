package subscription

import (
	"slices"
	"testing"
	"time"
)

// TestMatchDisabled: disabled endpoints are found by type like enabled
// ones, and leave the disabled sets when re-enabled or deleted; Match
// never returns them.
func TestMatchDisabled(t *testing.T) { backends(t, testMatchDisabled) }

func testMatchDisabled(t *testing.T, e *env) {
	s := e.store(t, true)
	ctx := ctxFor(t, time.Minute)
	agents := create(t, s, "t1", "agent.*")
	all := create(t, s, "t1", "*")
	calls := create(t, s, "t1", "call.started")
	other := create(t, s, "t2", "*")
	for _, ep := range []*Endpoint{agents, all, calls, other} {
		if err := s.Disable(ctx, ep.ID, "410 Gone"); err != nil {
			t.Fatal(err)
		}
	}
	yes, no := true, false
	if _, err := s.Update(ctx, "t1", all.ID, Patch{Disabled: &no}); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, "t1", calls.ID); err != nil {
		t.Fatal(err)
	}
	if err := s.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	disabled := func(tenant, typ string) []string {
		ids, err := s.MatchDisabled(ctx, tenant, typ)
		if err != nil {
			t.Fatal(err)
		}
		return ids
	}
	tests := []struct {
		tenant, typ string
		want        []string
	}{
		{"t1", "agent.created", []string{agents.ID}},
		{"t1", "call.started", nil},
		{"t2", "call.started", []string{other.ID}},
		{"t3", "agent.created", nil},
	}
	for _, tt := range tests {
		if got := disabled(tt.tenant, tt.typ); !sameIDs(got, tt.want) {
			t.Errorf("MatchDisabled(%s, %s) = %v, want %v", tt.tenant, tt.typ, got, tt.want)
		}
	}
	if got := match(t, s, "t1", "agent.created"); !sameIDs(got, []string{all.ID}) {
		t.Errorf("Match(t1, agent.created) = %v, want only the re-enabled %s", got, all.ID)
	}
	// Disabling again moves it back, visible after a refresh.
	if _, err := s.Update(ctx, "t1", all.ID, Patch{Disabled: &yes}); err != nil {
		t.Fatal(err)
	}
	if err := s.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if got := disabled("t1", "agent.created"); !slices.Contains(got, all.ID) || len(got) != 2 {
		t.Errorf("after disabling %s again: %v", all.ID, got)
	}
}
