// Package subscription provides customer endpoints (subscriptions): the model,
// its validation, and the Store that keeps them in a compacted Kafka topic
// (the source of truth) with Redis as the cache and matching index.
//
// # Writes
//
// Every write (Create, Update, Delete, RotateSecret, Disable) is produced to
// <prefix>endpoints first (key = endpoint id, value = endpoint JSON, nil
// value = deleted; headers hookstream-tenant and hookstream-version) and
// returns only after Kafka acknowledged it and Redis applied it, so a reader
// that calls Refresh afterwards sees it. Read-modify-writes of one endpoint
// hold a short Redis lock, so two concurrent updates never build on the same
// version (the loser waits, or gets ErrConflict after 2 s).
//
// # Redis
//
// One Lua script applies one topic record atomically (see keys in redis.go):
// the endpoint JSON in a hash, the tenant's listing set (ids sort by creation
// time), and index sets idx:<tenant>:<filter> of enabled endpoints, plus a
// change counter bumped (and published) on every change. Records are ordered
// by their Kafka offset, kept per id in Redis: applying an older record after
// a newer one does nothing, so Redis converges on what compaction keeps (the
// last record per key), whatever order writers and tailers apply in.
//
// Match(tenant, type) unions the index sets of the few filters that can
// select type ("*", the type, "agent.*"), so its cost does not depend on how
// many endpoints a tenant has. Match and Endpoint answer from an in-process
// cache tagged with (generation, change counter); Refresh, pub/sub
// notifications and a 1 s ticker drop it when the counter moved.
//
// # Rebuild and repair
//
// A generation marker key is set only when a rebuild has completed. When it
// is missing (a new or flushed Redis), readers wait, and Run in one process
// (holding a renewed lock) reads the topic from its start up to the end
// offsets, applies every record, and sets the marker. Run then tails the
// topic with a non-group consumer from the offsets recorded in Redis and
// applies every record again (a no-op when already applied): that repairs
// Redis when a writer died between Kafka's ack and its Redis write.
package subscription
