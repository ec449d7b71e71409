package deliverer_test

import (
	"slices"
	"testing"
	"time"

	"github.com/hookstream/hookstream/internal/testenv"
	"github.com/hookstream/hookstream/subscription"
)

// TestTenantCannotStarveOthers: one tenant's many hung endpoints take the
// slots they may, and another tenant's deliveries stay as fast as without
// them (p99 within 2x; below 100 ms both count as 100 ms, so that
// scheduling noise on a loaded machine does not decide the test). With one
// shared pool the other tenant waited for a hung request's timeout.
func TestTenantCannotStarveOthers(t *testing.T) {
	t.Parallel()
	const (
		maxInFlight = 16
		hung        = 40
		samples     = 20
	)
	e := newEnv(t, 1) // one partition: every endpoint in one worker
	holeURL, accepted := blackHole(t)
	var holes []*subscription.Endpoint
	for range hung {
		holes = append(holes, e.endpoint(t, holeURL, ""))
	}
	rc := newReceiver(t, nil)
	b, err := e.store.Create(ctxFor(t, 30*time.Second), "tenant-b", subscription.EndpointInput{URL: rc.srv.URL, Events: []string{"*"}})
	if err != nil {
		t.Fatal(err)
	}
	rc.setSecret(b)
	e.start(t, runOpts{timeout: 10 * time.Second, maxInFlight: maxInFlight})

	// The first delivery waits for the group to form: not a sample.
	e.deliver(t, b, 2, 1, 1)
	testenv.Eventually(t, 60*time.Second, "tenant b's first delivery", func() bool { return rc.delivered() >= 1 })
	next := 2
	p99 := func() time.Duration {
		var lat []time.Duration
		for range samples {
			start := time.Now()
			e.deliver(t, b, 2, next, next)
			want := next
			testenv.Eventually(t, 60*time.Second, "tenant b's delivery", func() bool { return rc.delivered() >= want })
			lat = append(lat, time.Since(start))
			next++
		}
		slices.Sort(lat)
		return lat[len(lat)*99/100]
	}
	base := p99()

	for i, h := range holes {
		e.deliver(t, h, 1, i+1, i+1)
	}
	// The hung tenant holds all it may: every slot but its share's worth.
	testenv.Eventually(t, 30*time.Second, "hung requests to hold their slots", func() bool { return accepted.Load() >= maxInFlight-maxInFlight/8 })
	loaded := p99()

	floor := 100 * time.Millisecond
	t.Logf("tenant b p99: %s alone, %s beside %d hung endpoints of another tenant", base, loaded, hung)
	if max(loaded, floor) > 2*max(base, floor) {
		t.Errorf("tenant b p99 %s beside hung endpoints, want within 2x of %s without them", loaded, base)
	}
}
