package recovery

import "github.com/hookstream/hookstream/internal/deliverylog"

// RecoverPlan is what a recover job of endpointID sends again: each of
// its failing deliveries, from the bytes the delivery log recorded. The
// API and the portal both start recover jobs from it.
func RecoverPlan(endpointID string, failing []deliverylog.FailingDelivery) []Item {
	plan := make([]Item, 0, len(failing))
	for _, d := range failing {
		plan = append(plan, Item{EndpointID: endpointID, Partition: d.Partition, Offset: d.Offset})
	}
	return plan
}
