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
		{"each failing delivery, to the endpoint", []deliverylog.FailingDelivery{
			{EventID: "a", Delivery: deliverylog.Delivery{EndpointID: "other", Partition: 2, Offset: 7}},
			{EventID: "b", Delivery: deliverylog.Delivery{Partition: 0, Offset: 9}},
		}, []Item{{EndpointID: "ep", Partition: 2, Offset: 7}, {EndpointID: "ep", Partition: 0, Offset: 9}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := RecoverPlan("ep", tt.failing); !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("RecoverPlan = %+v, want %+v", got, tt.want)
			}
		})
	}
}
