package deliverer

import "time"

// warm runs each function on a goroutine of its own, reusing goroutines
// that finished one within idle: an attempt's goroutine grows its stack
// through the HTTP client, and a fresh goroutine per attempt paid for that
// growth every time (a twentieth of the deliverer's CPU under load).
type warm struct {
	jobs chan func()
	idle time.Duration
}

func newWarm(idle time.Duration) *warm { return &warm{jobs: make(chan func()), idle: idle} }

// Go runs f on an idle goroutine, or on a new one when none is idle, so f
// never waits for another to finish.
func (p *warm) Go(f func()) {
	select {
	case p.jobs <- f:
	default:
		go p.loop(f)
	}
}

func (p *warm) loop(f func()) {
	t := time.NewTimer(p.idle)
	defer t.Stop()
	for {
		f()
		t.Reset(p.idle)
		select {
		case f = <-p.jobs:
		case <-t.C:
			return
		}
	}
}
