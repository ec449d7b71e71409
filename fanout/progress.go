package fanout

import "github.com/hookstream/hookstream/internal/groupwatch"

// WithWatch records the fanout's commits in w (default: none), whose
// callbacks (w.ClientOpts) the caller passes to the session: with both,
// w.Check tells a fanout stuck without partitions, or holding partitions
// without committing while their lag grows.
func WithWatch(w *groupwatch.Watch) Option { return func(c *cfg) { c.watch = w } }
