package recovery_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/hookstream/hookstream/internal/recovery"
)

// TestReplayWindowGoneByRetention: retention removes the rest of a
// replay's window while its runner is stopped. The resumed job ends
// failed, saying so, instead of waiting for records past its window (it
// hung until unrelated events arrived, then ended done with none failed).
func TestReplayWindowGoneByRetention(t *testing.T) {
	e := newEnv(t)
	ep := e.endpoint(t, "acme", "*")
	e.publish(t, 400, time.Now().Add(-time.Hour))
	j, _, err := e.svc.Submit(context.Background(), recovery.Job{Tenant: "acme", Kind: recovery.KindReplay, EndpointID: ep,
		Since: time.Now().Add(-2 * time.Hour), Rate: 10}, nil)
	if err != nil {
		t.Fatal(err)
	}
	e.waitState(t, "acme", j.ID, 30*time.Second, recovery.StateRunning)
	if err := e.stopSv(); err != nil {
		t.Fatal(err)
	}
	adm := kadm.NewClient(e.cl)
	ends, err := adm.ListEndOffsets(context.Background(), e.names.Events)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := adm.DeleteRecords(context.Background(), ends.Offsets()); err != nil {
		t.Fatal(err)
	}
	e.start(t)
	j = e.waitState(t, "acme", j.ID, 30*time.Second, recovery.StateFailed, recovery.StateDone)
	if j.State != recovery.StateFailed || !strings.Contains(j.Error, "retention") {
		t.Fatalf("replay resumed after retention removed its window: %s %q, want failed naming retention", j.State, j.Error)
	}
}
