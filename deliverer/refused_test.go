package deliverer_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hookstream/hookstream/deliverer"
	"github.com/hookstream/hookstream/internal/kafkaacl"
	"github.com/hookstream/hookstream/internal/record"
	"github.com/hookstream/hookstream/internal/testenv"
)

// TestRefusedDeadLetterIsNotLost: Kafka refuses a dead letter (the
// deliverer's user may not write the dead topic, an error no retry
// cures). The deliverer stops with the error and leaves the delivery
// record uncommitted; once the ACL allows the write, the next deliverer
// dead-letters it. A deliverer that counted the refused record as done
// would commit past it, and the dead letter would never be written.
func TestRefusedDeadLetterIsNotLost(t *testing.T) {
	t.Parallel()
	k := testenv.StartSecureKafka(t, 1)
	e := newEnvOn(t, k.Kafka, 1)
	const user, pass = "deliverer", "deliverer-secret"
	k.AddUser(t, user, pass)
	grants, err := kafkaacl.Grants("deliverer", kafkaacl.Names{Topics: e.topics, TopicPrefix: prefix, DelivererGroup: deliverer.Group})
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range kafkaacl.Builders(grants, "User:"+user) {
		k.Grant(t, b)
	}
	deny := kadm.NewACLs().Deny("User:" + user).DenyHosts("*").Topics(e.topics.Dead).
		ResourcePatternType(kadm.ACLPatternLiteral).Operations(kadm.OpWrite)
	k.Grant(t, deny)
	kopts := append(k.ClientOpts(user, pass), kgo.SessionTimeout(1500*time.Millisecond),
		kgo.HeartbeatInterval(200*time.Millisecond), kgo.RebalanceTimeout(5*time.Second))
	o := runOpts{schedule: "0s,50ms,50ms", kopts: kopts}

	rc, ep := e.receiverEndpoint(t, "", failing(1, always, 500))
	e.deliver(t, ep, 0, 1, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = e.newDeliverer(t, o).Run(ctx)
	if err == nil || errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), e.topics.Dead) {
		t.Fatalf("Run with the dead letter refused: %v, want it to stop naming %s", err, e.topics.Dead)
	}
	if off, ok := e.committed(t, e.topics.Deliveries)[0]; ok && off > 0 {
		t.Fatalf("committed offset %d of the deliveries partition, past the record whose dead letter was refused", off)
	}
	if n := rc.delivered(); n != 0 {
		t.Fatalf("event 2 delivered (%d) before event 1 ended", n)
	}

	// Allowed again: the next deliverer redoes event 1 and dead-letters it.
	if _, err := kadm.NewClient(k.Client(t)).DeleteACLs(context.Background(), kadm.NewACLs().Deny("User:"+user).DenyHosts("*").
		Topics(e.topics.Dead).ResourcePatternType(kadm.ACLPatternLiteral).Operations(kadm.OpWrite)); err != nil {
		t.Fatal(err)
	}
	e.start(t, o)
	testenv.Eventually(t, 30*time.Second, "event 2 delivered", func() bool { return rc.delivered() == 1 })
	dead := e.readAtLeast(t, e.topics.Dead, 1)
	if len(dead) != 1 {
		t.Fatalf("%d dead letters, want 1", len(dead))
	}
	if d, err := record.Parse(dead[0]); err != nil || d.EventID != eventID(0, 1) {
		t.Fatalf("dead letter %+v, %v; want event 1", d, err)
	}
}
