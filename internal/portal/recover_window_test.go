package portal

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/hookstream/hookstream/deliverer"
	"github.com/hookstream/hookstream/internal/deliverylog"
	"github.com/hookstream/hookstream/subscription"
)

// TestRecoverFormWindowTooLarge: the recover form refuses a window holding
// more events than one recover goes through, saying where to start instead
// of starting a job cut short, and leaves the disabled endpoint disabled
// though "enable" was ticked; from there it enables it and starts the job.
func TestRecoverFormWindowTooLarge(t *testing.T) {
	s := startStack(t)
	s.portal.RecoverLimit = 3
	e := s.endpoint(t, "acme")
	disabled := true
	if _, err := s.store.Update(context.Background(), "acme", e.ID, subscription.Patch{Disabled: &disabled}); err != nil {
		t.Fatal(err)
	}
	isDisabled := func() bool {
		got, err := s.store.Get(context.Background(), "acme", e.ID)
		if err != nil {
			t.Fatal(err)
		}
		return got.Disabled
	}
	ix := s.portal.Failing.(*deliverylog.Index)
	t0 := time.Now().Add(-time.Hour).Truncate(time.Second).UTC()
	for i := range 5 {
		a := deliverer.Attempt{Tenant: "acme", EndpointID: e.ID, EventID: fmt.Sprintf("evt_%024d", i), EventType: "agent.created",
			Attempt: 1, Status: 500, Outcome: "failed", Trigger: "scheduled", At: t0.Add(time.Duration(i) * time.Second)}
		if err := ix.Add(context.Background(), 0, int64(i), a); err != nil {
			t.Fatal(err)
		}
	}
	v := s.signIn(t, "acme", Recover)
	split := t0.Add(2 * time.Second).Format("2006-01-02T15:04:05") // the newest three start there
	st, body := v.post("/portal/endpoints/"+e.ID+"/recover", url.Values{"since": {t0.Format("2006-01-02T15:04:05")}, "enable": {"yes"}})
	if st != http.StatusUnprocessableEntity || !strings.Contains(body, "More than 3 events") || !strings.Contains(body, split) {
		t.Fatalf("recover of 5 events with a limit of 3: %d, want 422 saying to recover from %s:\n%s", st, split, body)
	}
	if !isDisabled() {
		t.Fatal("the refused recover enabled the endpoint")
	}
	if st, _ := v.post("/portal/endpoints/"+e.ID+"/recover", url.Values{"since": {split}, "enable": {"yes"}}); st != http.StatusSeeOther {
		t.Fatalf("recover from %s: %d, want 303 to the job", split, st)
	}
	if isDisabled() {
		t.Fatal("the recover with enable ticked left the endpoint disabled")
	}
}
