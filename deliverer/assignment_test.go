package deliverer_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/hookstream/hookstream/deliverer"
	"github.com/hookstream/hookstream/internal/testenv"
	"github.com/hookstream/hookstream/sender"
)

// TestAssignmentCheck: of two deliverers over one partition, the one
// without it fails the readiness check once past the bound, the other
// passes; when the holder stops, the partition moves and the check passes.
func TestAssignmentCheck(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 1)
	const bound = 500 * time.Millisecond
	start := func() (func(context.Context) error, func() error) {
		d, err := deliverer.New(kafkaOpts(e.kafka.Addr), e.store, sender.New(sender.WithAllowPrivate(true)),
			deliverer.WithTopics(e.topics), deliverer.WithLogger(testLogger()), deliverer.WithCommitInterval(100*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		return d.AssignmentCheck(bound), testenv.Run(t, d)
	}
	checkA, stopA := start()
	testenv.Eventually(t, 30*time.Second, "the first deliverer holding the partition", func() bool { return checkA(context.Background()) == nil })
	time.Sleep(bound) // a check failing only past the bound could not fail sooner
	if err := checkA(context.Background()); err != nil {
		t.Fatalf("holder: %v", err)
	}
	checkB, _ := start()
	testenv.Eventually(t, 30*time.Second, "the idle deliverer failing the check", func() bool {
		return errors.Is(checkB(context.Background()), deliverer.ErrUnassigned)
	})
	if err := checkA(context.Background()); err != nil {
		t.Errorf("holder while the other idles: %v", err)
	}
	if err := stopA(); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 30*time.Second, "the partition moved to the idle deliverer", func() bool { return checkB(context.Background()) == nil })
}
