package cli

import (
	"context"
	"log/slog"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// leaveTimeout bounds the LeaveGroup a stopping static member sends.
const leaveTimeout = 5 * time.Second

// leaveGroup removes this process's static member from group after its
// consumer stopped, when --leave-on-shutdown asks for it: franz-go never
// sends a LeaveGroup for a static member (its restart is meant to take its
// place), so a replica that comes back under another name (a Deployment's
// new pod) would leave its partitions without a consumer until its session
// timed out. A dynamic member has already left when its client closed.
func (g groupFlags) leaveGroup(ctx context.Context, kc *kgo.Client, group string, log *slog.Logger) {
	if g.instance == "" || !g.leave {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), leaveTimeout)
	defer cancel()
	resp, err := kadm.NewClient(kc).LeaveGroup(ctx, kadm.LeaveGroup(group).InstanceIDs(g.instance).Reason("shutdown"))
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		log.Warn("leaving the group", "group", group, "instance_id", g.instance, "err", err)
		return
	}
	log.Info("left the group", "group", group, "instance_id", g.instance)
}
