package kafkaacl

import (
	"errors"
	"testing"

	"github.com/hookstream/hookstream/topic"
)

func TestGrants(t *testing.T) {
	n := Names{Topics: topic.New("p."), TopicPrefix: "p.", FanoutGroup: "g-f", DelivererGroup: "g-d", FanoutTxnPrefix: "t-f-", APITxnPrefix: "t-a-"}
	for _, role := range Roles {
		gs, err := Grants(role, n)
		if err != nil || len(gs) == 0 {
			t.Fatalf("%s: %d grants, %v", role, len(gs), err)
		}
		for _, b := range Builders(gs, "User:x") {
			if err := b.ValidateCreate(); err != nil {
				t.Errorf("%s: builder invalid: %v", role, err)
			}
		}
	}
	if _, err := Grants("admin", n); !errors.Is(err, ErrUnknownRole) {
		t.Fatalf("unknown role: err = %v", err)
	}
	// The consuming roles read only what they consume: no role may write
	// the topic it consumes from, except the deliverer's retries.
	writes := map[string]map[string]bool{}
	for _, role := range Roles {
		gs, _ := Grants(role, n)
		writes[role] = map[string]bool{}
		for _, g := range gs {
			for _, op := range g.Ops {
				if op.String() == "WRITE" && g.Resource == Topic {
					writes[role][g.Name] = true
				}
			}
		}
	}
	if writes["fanout"][n.Topics.Events] || writes["indexer"][n.Topics.Attempts] || len(writes["indexer"]) != 0 {
		t.Fatalf("unexpected writes: %v", writes)
	}
}
