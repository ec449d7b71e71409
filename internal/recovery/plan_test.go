package recovery

import (
	"reflect"
	"testing"

	"github.com/hookstream/hookstream/internal/deliverylog"
)

func TestRecoverPlan(t *testing.T) {
	tests := []struct {
		name    string
		failing []deliverylog.FailingDelivery
		want    []Item
	}{
		{"none", nil, []Item{}},
		{"each failing delivery, to the endpoint, from its event, in order", []deliverylog.FailingDelivery{
			{EventID: "a", Source: deliverylog.Location{Topic: "events", Partition: 2, Offset: 7}, Delivery: deliverylog.Delivery{EndpointID: "other"}},
			{EventID: "b", Source: deliverylog.Location{Topic: "events", Partition: 0, Offset: 9}},
		}, []Item{{EndpointID: "ep", Partition: 2, Offset: 7, Event: true}, {EndpointID: "ep", Partition: 0, Offset: 9, Event: true}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := RecoverPlan("ep", tt.failing); !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("RecoverPlan = %+v, want %+v", got, tt.want)
			}
		})
	}
}
