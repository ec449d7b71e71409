package api_test

import (
	"bytes"
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/segmentio/encoding/json"

	"github.com/hookstream/hookstream/internal/testenv"
	"github.com/hookstream/hookstream/subscription"
)

// TestEndpointsMaskCredentialHeaders: credential-like custom header values
// never come back in a response, and sending a masked value back in an
// update keeps the stored credential.
func TestEndpointsMaskCredentialHeaders(t *testing.T) {
	st := startEndpointsAPI(t)
	creds := map[string]string{"Authorization": "Bearer s3cr3t-a", "X-Auth-Token": "s3cr3t-b", "x-api-key": "s3cr3t-c", "Cookie": "sid=s3cr3t-d"}
	headers := map[string]string{"X-Team": "blue"}
	for k, v := range creds {
		headers[k] = v
	}
	hb, _ := json.Marshal(headers)
	r := epDo(t, "POST", st.base+"/v1/endpoints", "tok-acme", `{"url":"https://93.184.215.14/hook","events":["agent.*"],"headers":`+string(hb)+`}`)
	if r.status != http.StatusCreated {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	var ep epView
	r.decode(t, &ep)
	url := st.base + "/v1/endpoints/" + ep.ID

	noCreds := func(what string, r epReply) {
		t.Helper()
		if r.status != http.StatusOK && r.status != http.StatusCreated {
			t.Fatalf("%s: %d %s", what, r.status, r.body)
		}
		if bytes.Contains(r.body, []byte("s3cr3t")) {
			t.Errorf("%s shows a credential header value: %s", what, r.body)
		}
	}
	noCreds("create", r)
	get := epDo(t, "GET", url, "tok-acme", "")
	noCreds("get", get)
	noCreds("list", epDo(t, "GET", st.base+"/v1/endpoints", "tok-acme", ""))
	var got epView
	get.decode(t, &got)
	if got.Headers["X-Team"] != "blue" || got.Headers["Authorization"] != subscription.MaskedValue {
		t.Errorf("get headers = %v, want X-Team shown and Authorization masked", got.Headers)
	}

	// Read, modify, write back: the masked values must not replace the
	// credentials.
	got.Headers["X-Team"] = "red"
	hb, _ = json.Marshal(got.Headers)
	noCreds("patch", epDo(t, "PATCH", url, "tok-acme", `{"headers":`+string(hb)+`}`))

	rdb := redis.NewClient(&redis.Options{Addr: st.redis.Addr})
	t.Cleanup(func() { _ = rdb.Close() })
	store := subscription.NewStore(st.kafka.Client(t), rdb, st.cat, subscription.WithLogger(quiet))
	testenv.Run(t, store)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	stored, err := store.Get(ctx, "acme", ep.ID)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range creds {
		if stored.Headers[k] != v {
			t.Errorf("stored %s = %q after a patch with masked values, want %q", k, stored.Headers[k], v)
		}
	}
	if stored.Headers["X-Team"] != "red" {
		t.Errorf("stored X-Team = %q, want the patched red", stored.Headers["X-Team"])
	}
}
