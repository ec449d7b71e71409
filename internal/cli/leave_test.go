package cli

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/hookstream/hookstream/internal/testenv"
	"github.com/hookstream/hookstream/topic"
)

// TestLeaveOnShutdown: a static member stopped with --leave-on-shutdown
// leaves the group, so the other member takes its partitions at once
// rather than after the session timeout.
func TestLeaveOnShutdown(t *testing.T) {
	if testing.Short() {
		t.Skip("joins a consumer group")
	}
	k := testenv.StartKafka(t)
	names := k.CreateTopics(t, topic.DefaultPrefix, topic.Partitions{Events: 1, Deliveries: 4, Other: -1})
	g := groupFlags{session: 20 * time.Second, rebalance: 10 * time.Second, leave: true}
	ga, gb := g, g
	ga.instance, gb.instance = "deliverer-a", "deliverer-b"
	a := startMember(t, k, names, ga)
	b := startMember(t, k, names, gb)
	testenv.Eventually(t, time.Minute, "both members assigned", func() bool {
		oa, _, _ := a.state()
		ob, _, _ := b.state()
		return oa > 0 && ob > 0 && oa+ob == 4
	})
	a.cl.Close() // a static member's client sends no LeaveGroup
	stopped := time.Now()
	ga.leaveGroup(context.Background(), k.Client(t), "hookstream-deliverer", slog.New(slog.DiscardHandler))
	testenv.Eventually(t, g.session, "b holding all partitions before a's session times out", func() bool { o, _, _ := b.state(); return o == 4 })
	t.Logf("b took a's partitions %v after a stopped", time.Since(stopped).Round(10*time.Millisecond))
}
