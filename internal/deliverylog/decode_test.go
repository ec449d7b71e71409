package deliverylog

import (
	"reflect"
	"testing"
	"time"

	"github.com/segmentio/encoding/json"

	"github.com/hookstream/hookstream/deliverer"
)

// TestSummaryRecordFollowsAttempt: the indexer's slim decoding reads every
// field of an attempts record but the heavy ones, which it leaves to Kafka.
// A field added to deliverer.Attempt fails here until it is one or the
// other.
func TestSummaryRecordFollowsAttempt(t *testing.T) {
	heavy := map[string]bool{"Error": true, "ResponseBody": true, "RequestHeaders": true}
	at, sr := reflect.TypeFor[deliverer.Attempt](), reflect.TypeFor[summaryRecord]()
	for i := range at.NumField() {
		f := at.Field(i)
		g, ok := sr.FieldByName(f.Name)
		if heavy[f.Name] {
			if ok {
				t.Errorf("summaryRecord decodes heavy field %s", f.Name)
			}
			continue
		}
		if !ok || g.Type != f.Type {
			t.Errorf("summaryRecord lacks %s %s", f.Name, f.Type)
		}
	}
	a := deliverer.Attempt{EndpointID: "ep", EventID: "evt", EventType: "t", Tenant: "acme", Attempt: 2, Status: 500,
		LatencyMS: 12, Error: "boom", ResponseBody: "{}", Outcome: "failed", At: time.Unix(1764880000, 5).UTC(),
		ErrorClass: "http_status", Trigger: "resend", ResponseTruncated: true, RequestHeaders: map[string]string{"A": "b"}}
	v, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	var got deliverer.Attempt
	if err := decodeSummaryFields(v, &got); err != nil {
		t.Fatal(err)
	}
	want := a
	want.Error, want.ResponseBody, want.RequestHeaders = "", "", nil
	if !reflect.DeepEqual(got, want) {
		t.Errorf("decoded %+v, want %+v", got, want)
	}
}
