package deliverer

import (
	"fmt"
	"reflect"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func TestAssignIndexes(t *testing.T) {
	tests := []struct {
		name  string
		n     int32
		owned [][]int32
		want  [][]int32
	}{
		{"first join", 4, [][]int32{nil}, [][]int32{{0, 1, 2, 3}}},
		// Floors are filled first, then the extra shares.
		{"fresh group", 5, [][]int32{nil, nil}, [][]int32{{0, 1, 4}, {2, 3}}},
		// A joins an owner: the owner keeps its share, the rest moves.
		{"member joins", 4, [][]int32{{0, 1, 2, 3}, nil}, [][]int32{{0, 1}, {2, 3}}},
		{"member joins first in order", 4, [][]int32{nil, {0, 1, 2, 3}}, [][]int32{{2, 3}, {0, 1}}},
		// The survivors keep theirs and share the dead member's.
		{"member gone", 6, [][]int32{{0, 1}, {4, 5}}, [][]int32{{0, 1, 2}, {3, 4, 5}}},
		{"stickiness decides the extra share", 5, [][]int32{{0}, {1, 2, 3, 4}}, [][]int32{{0, 4}, {1, 2, 3}}},
		{"double claim stays with the first", 4, [][]int32{{0, 1}, {1, 2}}, [][]int32{{0, 1}, {2, 3}}},
		{"claims beyond the count ignored", 2, [][]int32{{5}, {1}}, [][]int32{{0}, {1}}},
		{"more members than partitions", 2, [][]int32{{1}, nil, {0}}, [][]int32{{1}, nil, {0}}},
		{"no partitions", 0, [][]int32{nil}, [][]int32{nil}},
		{"no members", 3, nil, [][]int32{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := assignIndexes(tt.n, tt.owned)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("assignIndexes(%d, %v) = %v, want %v", tt.n, tt.owned, got, tt.want)
			}
		})
	}
}

// TestBalancerCopartitionedCooperative balances a group as its leader
// would: index i of both topics goes to one member, and an index that
// moves is given to nobody in this round, so its old owner can revoke it
// first.
func TestBalancerCopartitionedCooperative(t *testing.T) {
	const deliveries, retries = "d", "r"
	topics := map[string]int32{deliveries: 4, retries: 4}
	tests := []struct {
		name  string
		owned []map[string][]int32 // per member, in member order
		want  map[string]map[string][]int32
	}{
		{"fresh", []map[string][]int32{nil, nil},
			map[string]map[string][]int32{
				"m0": {deliveries: {0, 1}, retries: {0, 1}},
				"m1": {deliveries: {2, 3}, retries: {2, 3}},
			}},
		{"join: moves held back", []map[string][]int32{{deliveries: {0, 1, 2, 3}, retries: {0, 1, 2, 3}}, nil},
			map[string]map[string][]int32{
				"m0": {deliveries: {0, 1}, retries: {0, 1}},
				"m1": {},
			}},
		{"join: second round", []map[string][]int32{{deliveries: {0, 1}, retries: {0, 1}}, nil},
			map[string]map[string][]int32{
				"m0": {deliveries: {0, 1}, retries: {0, 1}},
				"m1": {deliveries: {2, 3}, retries: {2, 3}},
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var members []kmsg.JoinGroupResponseMember
			for i, owned := range tt.owned {
				m := kmsg.NewJoinGroupResponseMember()
				m.MemberID = fmt.Sprintf("m%d", i)
				m.ProtocolMetadata = balancer{}.JoinGroupMetadata([]string{deliveries, retries}, owned, 1)
				members = append(members, m)
			}
			gmb, _, err := balancer{}.MemberBalancer(members)
			if err != nil {
				t.Fatal(err)
			}
			cb := gmb.(*kgo.ConsumerBalancer)
			plan := balancer{}.Balance(cb, topics).(*kgo.BalancePlan)
			got := plan.AsMemberIDMap()
			for id, want := range tt.want {
				g := got[id]
				if len(want) == 0 && len(g) == 0 {
					continue
				}
				if !reflect.DeepEqual(g, want) {
					t.Errorf("%s: %v, want %v (plan %v)", id, g, want, got)
				}
			}
		})
	}
}
