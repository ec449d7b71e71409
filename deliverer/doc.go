// Package deliverer consumes delivery records and POSTs them, signed, to
// their endpoints: in order per endpoint, retrying on a schedule, without a
// failing endpoint holding up any other.
//
// # Shape
//
// The Deliverer is one member of the consumer group "hookstream-deliverer"
// over <prefix>deliveries and <prefix>retries. A range balancer gives
// partition i of both topics to one member, which runs one worker for it.
// Inside a worker every endpoint has a FIFO lane. A strict lane has one
// request in flight; a lane whose endpoint has ordering "none" up to
// WithUnorderedConcurrency. All lanes of the process share WithMaxInFlight
// request slots, shared fairly among tenants (see WithTenantShare); a lane
// waiting out a backoff holds none.
//
// # Retries and parking
//
// After a failed attempt the next waits the schedule's delay. A short delay
// (up to WithParkThreshold) is waited in memory while the lane's later
// records wait behind it. A longer one parks the lane in <prefix>retries:
// first a marker (see HeaderMarker), then the failed record with its
// attempt count and not-before time, then the rest of the lane, in order;
// once Kafka has them they are finished in deliveries, so its offset moves
// on. Records arriving for a parked lane go to retries behind them. A lane
// in backoff whose queue grows long parks as well, so one endpoint's
// backlog never holds the partition's memory; so does a lane whose request
// hangs, once the partition holds half its bound (a copy of the hanging
// record goes first, settled when the request ends).
//
// The marker is the parked lane's durable state: the lowest retries offset
// still to be delivered (every record of the endpoint from there on is),
// when delivering may resume, attempts made since the records were written.
// Delivery records in retries are written once and never rewritten; the
// group consumer finishes them as it reads them and keeps only the lanes'
// newest markers unfinished. A lane renews its marker every park threshold
// (a reading one every commit interval while it moves on, and any lane
// whenever its state changes), so the retries offset never waits on a
// backoff either: both committed offsets trail the work by about a park
// threshold at most.
//
// When the wait is over the lane reads its records back from its
// marker's offset (apart from the group consumer, which stays at the end
// of the topic), a few records at a time, and delivers them in order. A
// failure with a long delay parks it again at the failed record, which
// stays where it is. Once it has delivered everything up to the end
// of retries, the lane is back in memory and a "done" marker says so. An
// endpoint with ordering "none" reads back with its concurrency, records that
// wait long staying in the lane while up to 1000 later ones go around them.
// Retention of the retries topic must outlast the longest a lane stays
// parked (Ensure sets 14 days; WithDisableAfter bounds it at 5 days by
// default); records it deletes first are counted in
// hookstream.deliverer.retries.expired and logged.
//
// 410 Gone disables the endpoint and dead-letters the record, as does a
// failure when every attempt has failed for WithDisableAfter ("failing
// since" survives restarts in the lane's marker); both publish
// endpoint.disabled. Records of a disabled endpoint are dead-lettered
// (redrivable), those of a deleted one dropped, with an attempts record.
// Every attempt is logged to <prefix>attempts (see Attempt).
//
// When partition i is assigned, deliveries[i] is paused until retries[i] has
// been read up to the end offset it had then, so every parked lane is known
// from its newest marker before any newer live record of it is considered.
// Order per endpoint thus holds across the two topics, restarts and
// rebalances.
//
// # Offsets and memory
//
// Per partition of each topic the committed offset is the lowest record not
// yet finished: in deliveries delivered, dead-lettered, dropped for a
// deleted endpoint, or acknowledged by Kafka in retries; in retries every
// record but the lanes' newest markers. A deliveries partition stops
// fetching while WithMaxBuffered of its records, or WithMaxBufferedBytes of
// their bytes, are unfinished, and resumes below; a lane in backoff parks
// once it queues a tenth of either. A reading
// lane holds at most 32 records read back (twice its concurrency for
// ordering "none"); reads of retries are 1 MiB, four at a time per process.
//
// # Duplicates
//
// After a crash, a lost session or a rebalance (the range balancer is
// eager: every membership change revokes every partition, and requests in
// flight are cancelled), the next owner starts at the committed offsets and
// the lanes' newest markers. As lanes run concurrently the committed offset
// is held by the slowest lane of the partition (a short backoff holds it up
// to the park threshold plus the request timeouts), so records of faster
// lanes above it are sent again; a reading lane sends again what it
// delivered since its last marker, which it renews as often as offsets are
// committed while it moves on.
// Receivers dedupe by webhook-id.
package deliverer
