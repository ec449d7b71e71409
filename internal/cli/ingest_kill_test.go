package cli

import (
	"bytes"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hookstream/hookstream/envelope"
	"github.com/hookstream/hookstream/internal/testenv"
	"github.com/hookstream/hookstream/topic"
)

// TestIngestKill9 SIGKILLs the api while clients publish events to it:
// every event it answered 202 for is in the events topic. What it had not
// answered may be there or not; clients retry those with the same id.
func TestIngestKill9(t *testing.T) {
	bin := testenv.Binary(t)
	k := testenv.StartKafkaProcess(t, bin)
	names := k.CreateTopics(t, topic.DefaultPrefix, topic.Partitions{Events: 3, Deliveries: 2, Other: 1})
	r := testenv.StartRedis(t)
	apiAddr := freeAddr(t)
	api := startRoleProcess(t, bin, apiAddr, "api", "--kafka-brokers", k.Addr, "--redis-url", r.URL, "--http-addr", apiAddr,
		"--api-tokens", "tok=acme", "--log-format", "text")

	var mu sync.Mutex
	var acked []string
	var n atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 5 * time.Second}
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				id := fmt.Sprintf("evt_%04x%020x", w, i)
				body := fmt.Sprintf(`{"id":%q,"event":"agent.created","data":{"agent_id":"a","name":"b","model":"c","created_by":%d}}`, id, i)
				req, _ := http.NewRequest(http.MethodPost, "http://"+apiAddr+"/v1/events", bytes.NewBufferString(body))
				req.Header.Set("Authorization", "Bearer tok")
				req.Header.Set("Content-Type", "application/json")
				resp, err := client.Do(req)
				if err != nil {
					time.Sleep(10 * time.Millisecond) // the api is gone
					continue
				}
				resp.Body.Close()
				if resp.StatusCode == http.StatusAccepted {
					mu.Lock()
					acked = append(acked, id)
					mu.Unlock()
					n.Add(1)
				}
			}
		}()
	}
	api.WaitFor(t, "200 events accepted", time.Minute, func() bool { return n.Load() >= 200 })
	api.Kill()
	time.Sleep(300 * time.Millisecond) // publishers find the api gone
	close(stop)
	wg.Wait()

	in := map[string]bool{}
	for _, rec := range k.ReadAll(t, names.Events) {
		e, err := envelope.Decode(rec.Value, 0)
		if err != nil {
			t.Fatal(err)
		}
		in[e.ID] = true
	}
	missing := 0
	for _, id := range acked {
		if !in[id] {
			missing++
		}
	}
	if missing > 0 {
		t.Fatalf("%d of %d events the api accepted are not in %s", missing, len(acked), names.Events)
	}
	t.Logf("killed after %d events accepted; all in the topic (%d records)", len(acked), len(in))
}
