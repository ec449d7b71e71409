package deliverer

import (
	"maps"
	"slices"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// balancer is the deliverer group's balancer: cooperative, so a membership
// change moves only the partitions that must move while the others keep
// delivering; sticky, so a member keeps what it owns while its share
// allows; and co-partitioned, so partition i of deliveries and of retries
// (same counts) always go to one member, whose worker i reads both.
//
// Every member of a group must offer it: a group of deliverers that still
// use the eager range balancer shares no protocol with it, so an upgrade
// stops all deliverers before starting the new ones.
type balancer struct{}

func (balancer) ProtocolName() string { return "hookstream-copartitioned-cooperative" }
func (balancer) IsCooperative() bool  { return true }

// JoinGroupMetadata carries what the member owns, which the leader needs
// to keep it in place and to hold back moves for a second round.
func (balancer) JoinGroupMetadata(topics []string, owned map[string][]int32, generation int32) []byte {
	meta := kmsg.NewConsumerMemberMetadata()
	meta.Version = 3
	meta.Topics = topics
	meta.Generation = generation
	for _, t := range slices.Sorted(maps.Keys(owned)) {
		op := kmsg.NewConsumerMemberMetadataOwnedPartition()
		op.Topic, op.Partitions = t, owned[t]
		meta.OwnedPartitions = append(meta.OwnedPartitions, op)
	}
	return meta.AppendTo(nil)
}

func (balancer) ParseSyncAssignment(assignment []byte) (map[string][]int32, error) {
	return kgo.ParseConsumerSyncAssignment(assignment)
}

func (b balancer) MemberBalancer(members []kmsg.JoinGroupResponseMember) (kgo.GroupMemberBalancer, map[string]struct{}, error) {
	cb, err := kgo.NewConsumerBalancer(b, members)
	return cb, cb.MemberTopics(), err
}

// Balance gives partition index i of every topic to one member. A move
// from one member to another is left out of this round's plan
// (AdjustCooperative): the old owner revokes it, rejoins, and the next
// round assigns it.
func (balancer) Balance(cb *kgo.ConsumerBalancer, topics map[string]int32) kgo.IntoSyncAssignment {
	n := int32(0)
	for _, c := range topics {
		n = max(n, c)
	}
	var members []*kmsg.JoinGroupResponseMember
	var owned [][]int32
	cb.EachMember(func(m *kmsg.JoinGroupResponseMember, meta *kmsg.ConsumerMemberMetadata) {
		members = append(members, m)
		var idx []int32
		for _, op := range meta.OwnedPartitions {
			idx = append(idx, op.Partitions...)
		}
		slices.Sort(idx)
		owned = append(owned, slices.Compact(idx))
	})
	plan := cb.NewPlan()
	for mi, idx := range assignIndexes(n, owned) {
		for t, c := range topics {
			var ps []int32
			for _, i := range idx {
				if i < c {
					ps = append(ps, i)
				}
			}
			if len(ps) > 0 {
				plan.AddPartitions(members[mi], t, ps)
			}
		}
	}
	plan.AdjustCooperative(cb)
	return plan
}

// assignIndexes shares the indexes 0..n-1 among the members: each gets
// n/len(owned), the first n%len(owned) able to get one more, and keeps
// the indexes it owns (owned[m], sorted) as far as its share allows.
// An index two members claim stays with the first.
func assignIndexes(n int32, owned [][]int32) [][]int32 {
	m := len(owned)
	out := make([][]int32, m)
	if m == 0 {
		return out
	}
	floor, extra := int(n)/m, int(n)%m
	taken := make([]bool, n)
	keep := func(mi, limit int) {
		for _, i := range owned[mi] {
			if len(out[mi]) >= limit {
				return
			}
			if i >= 0 && i < n && !taken[i] && !slices.Contains(out[mi], i) {
				taken[i] = true
				out[mi] = append(out[mi], i)
			}
		}
	}
	// Every member keeps up to its floor; then those owning more keep one
	// more while the extra shares last, so stickiness decides who gets them.
	for mi := range owned {
		keep(mi, floor)
	}
	for mi := range owned {
		if extra > 0 && len(out[mi]) == floor {
			before := len(out[mi])
			keep(mi, floor+1)
			if len(out[mi]) > before {
				extra--
			}
		}
	}
	// The free indexes fill the members below their floor first, then one
	// more each while extra shares last.
	next := int32(0)
	free := func() (int32, bool) {
		for ; next < n; next++ {
			if !taken[next] {
				taken[next] = true
				return next, true
			}
		}
		return 0, false
	}
	for mi := range out {
		for len(out[mi]) < floor {
			i, ok := free()
			if !ok {
				break
			}
			out[mi] = append(out[mi], i)
		}
	}
	for mi := range out {
		if extra == 0 {
			break
		}
		if len(out[mi]) == floor {
			if i, ok := free(); ok {
				out[mi] = append(out[mi], i)
				extra--
			}
		}
	}
	for _, idx := range out {
		slices.Sort(idx)
	}
	return out
}
