// Package recovery runs resend, recover and replay as durable jobs.
//
// A job lives in the compacted topic <prefix>jobs (one partition), keyed by
// its id: the API writes its plan (for resend and recover, the Kafka
// locations of the delivery records to send again, in chunks keyed
// "<id>/plan/<n>") and its first state (queued); cancel requests are keyed
// "<id>/cancel". Every api process reads the topic into memory to answer
// GET /v1/jobs; one of them, the member holding the jobs topic's partition
// in the consumer group "hookstream-jobs", runs the jobs.
//
// A job runs in steps. Each step writes its delivery records to
// <prefix>deliveries and the job's new state (its progress) in one Kafka
// transaction, under a transactional id fixed per topic prefix: a runner
// killed mid-step leaves an open transaction that the next runner's first
// transaction fences and aborts, and the next runner resumes from the last
// committed state. A crash therefore neither loses nor repeats a job's
// deliveries; the receivers see duplicates only where the deliverer makes
// them.
//
// A job paces itself to its rate (deliveries per second, default
// DefaultRate): the records of one endpoint share one deliveries partition
// with other endpoints, whose live traffic must not queue behind a backlog
// of millions.
package recovery

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/segmentio/encoding/json"

	"github.com/hookstream/hookstream/internal/jsonptr"
)

// Job kinds.
const (
	KindResend  = "resend"
	KindRecover = "recover"
	KindReplay  = "replay"
)

// Job states.
const (
	StateQueued   = "queued"
	StateRunning  = "running"
	StateDone     = "done"
	StateCanceled = "canceled"
	StateFailed   = "failed"
)

// DefaultRate is a job's pace when it names none: deliveries per second.
const DefaultRate = 500

// DefaultMaxLead is the Config.MaxLead the roles use: at the default rate,
// ten seconds of a job's records beyond what the deliverer committed.
const DefaultMaxLead = 5000

// MaxRate bounds the rate a job may ask for.
const MaxRate = 20000

// ErrNotFound: no such job for this tenant.
var ErrNotFound = errors.New("recovery: job not found")

// ErrBadCursor: a List cursor that names no job of the tenant (never one,
// or one removed after its retention).
var ErrBadCursor = errors.New("recovery: cursor names no job")

// ErrFinished: the job already ended; it cannot be canceled.
var ErrFinished = errors.New("recovery: job already finished")

// DefaultRetention is how long a finished job (done, failed, canceled)
// stays listed before it is removed from the jobs topic: a week, as Svix
// and Stripe keep such records for a while.
const DefaultRetention = 7 * 24 * time.Hour

// DefaultKeyTTL is how long an idempotency key is remembered, from the
// creation of the job it started (Stripe keeps keys 24 hours): within it
// the same key and parameters return that job, other parameters are
// refused; after it the key starts a new job.
const DefaultKeyTTL = 24 * time.Hour

// ErrKeyReused: an idempotency key came again with other parameters.
var ErrKeyReused = errors.New("recovery: idempotency key used with other parameters")

// KeyReusedError is ErrKeyReused naming what differs.
type KeyReusedError struct {
	// Field is the JSON pointer of the first request field that
	// differs; "" when the key was used on another route or target.
	Field string
	// First describes the job the key started.
	First string
}

func (e *KeyReusedError) Error() string {
	return fmt.Sprintf("%v (the key started %s)", ErrKeyReused, e.First)
}

func (e *KeyReusedError) Is(target error) bool { return target == ErrKeyReused }

// sameRequest compares the job a key started with a new request under
// the same key, and names the first difference.
func sameRequest(old, j *Job) error {
	first := fmt.Sprintf("job %s, a %s", old.ID, old.Kind)
	if old.EndpointID != "" {
		first += " of endpoint " + old.EndpointID
	}
	if old.EventID != "" {
		first += " of event " + old.EventID
	}
	if old.Kind != j.Kind || old.EndpointID != j.EndpointID || old.EventID != j.EventID {
		return &KeyReusedError{First: first}
	}
	if old.Request == nil {
		return nil // written before jobs kept their request
	}
	names := slices.Sorted(maps.Keys(old.Request))
	for n := range j.Request {
		if _, ok := old.Request[n]; !ok {
			names = append(names, n)
		}
	}
	for _, n := range names {
		if !bytes.Equal(old.Request[n], j.Request[n]) {
			return &KeyReusedError{Field: jsonptr.Token(n), First: first}
		}
	}
	return nil
}

// Job is one recovery job and its progress. It is the value of the jobs
// topic, so field names are a wire format.
type Job struct {
	ID         string `json:"id"`
	Tenant     string `json:"tenant"`
	Kind       string `json:"kind"`
	EndpointID string `json:"endpoint_id,omitempty"` // recover, replay
	EventID    string `json:"event_id,omitempty"`    // resend
	State      string `json:"state"`
	// Total is what the job will go through: plan items (resend,
	// recover) or event offsets in the window (replay). Processed counts
	// those done; Sent the delivery records written; Failed the items
	// that could not be sent (their record is gone from Kafka, their
	// endpoint was deleted).
	Total     int64 `json:"total"`
	Processed int64 `json:"processed"`
	Sent      int64 `json:"sent"`
	Failed    int64 `json:"failed"`
	Rate      int   `json:"rate"`

	Since time.Time `json:"since,omitzero"`
	Until time.Time `json:"until,omitzero"`
	Types []string  `json:"types,omitempty"`

	IdempotencyKey string `json:"idempotency_key,omitempty"`
	// Request is the request's parameters, field name to JSON value: a
	// repeated idempotency key must come with the same ones.
	Request    map[string]json.RawMessage `json:"request,omitempty"`
	CreatedAt  time.Time                  `json:"created_at"`
	StartedAt  time.Time                  `json:"started_at,omitzero"`
	FinishedAt time.Time                  `json:"finished_at,omitzero"`
	Error      string                     `json:"error,omitempty"`

	// Seq counts the job's state records: a reader keeps the highest.
	Seq int64 `json:"seq"`
	// PlanChunks is how many "<id>/plan/<n>" records hold the plan; Next
	// the index of the first plan item not yet done.
	PlanChunks int   `json:"plan_chunks,omitempty"`
	Next       int64 `json:"next,omitempty"`
	// Replay: per events partition, the next offset to read and the end
	// of the window, both fixed when the job starts.
	Cursors map[int32]int64 `json:"cursors,omitempty"`
	Ends    map[int32]int64 `json:"ends,omitempty"`
}

// Finished reports whether the job reached a final state.
func (j *Job) Finished() bool {
	return j.State == StateDone || j.State == StateCanceled || j.State == StateFailed
}

// Item is one delivery to send again: where its bytes are, and the
// endpoint it goes to. Event items name the event's record in the events
// topic, from which the delivery is built as fanout built it; others (as
// jobs planned them before) a delivery record in the deliveries topic.
type Item struct {
	EndpointID string `json:"e"`
	Partition  int32  `json:"p"`
	Offset     int64  `json:"o"`
	Event      bool   `json:"v,omitempty"`
}

// planChunk bounds the items of one plan record (about 40 bytes each),
// keeping it far below Kafka's default 1 MB message size.
const planChunk = 5000

// newID returns a job id: random, or derived from the tenant's idempotency
// key, so that a request repeated with the same key (on any api replica)
// names the same job. prev is the job an expired use of the key started:
// a key used again after its TTL names a new job.
func newID(tenant, idempotencyKey, prev string) string {
	if idempotencyKey == "" {
		var b [12]byte
		_, _ = rand.Read(b[:])
		return "job_" + hex.EncodeToString(b[:])
	}
	seed := tenant + "\x00" + idempotencyKey
	if prev != "" {
		seed += "\x00" + prev
	}
	h := sha256.Sum256([]byte(seed))
	return "job_" + hex.EncodeToString(h[:12])
}
