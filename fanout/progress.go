package fanout

// CommitWatcher is told of every committed transaction. Committed must not
// block: it runs on the fanout's loop.
type CommitWatcher interface {
	Committed()
}

// WithWatch tells w of the fanout's commits (default: nobody). With a
// groupwatch.Watch whose client callbacks the caller passed to the session,
// the watch tells a fanout stuck without partitions, or holding partitions
// without committing while their lag grows.
func WithWatch(w CommitWatcher) Option { return func(c *cfg) { c.watch = w } }
