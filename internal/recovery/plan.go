package recovery

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hookstream/hookstream/internal/deliverylog"
)

// RecoverPlan is what a recover job of endpointID sends again: each of
// its failing deliveries, built from its event's record, in the order
// given (Failing's: as first sent).
func RecoverPlan(endpointID string, failing []deliverylog.FailingDelivery) []Item {
	plan := make([]Item, 0, len(failing))
	for _, d := range failing {
		plan = append(plan, Item{EndpointID: endpointID, Partition: d.Source.Partition, Offset: d.Source.Offset, Event: true})
	}
	return plan
}

// MaxRecoverEvents bounds the events one recover goes through: the
// delivery log's Failing reads no further than deliverylog.MaxFailing, so
// a larger window is refused rather than cut without a word.
const MaxRecoverEvents = deliverylog.MaxFailing

// ErrWindowTooLarge: more events were attempted to the endpoint in a
// recover's window than one recover goes through.
var ErrWindowTooLarge = errors.New("recovery: recover window holds too many events")

// WindowTooLargeError is ErrWindowTooLarge with where to split the window.
type WindowTooLargeError struct {
	Limit int
	// Since starts the part of the window that holds the newest Limit
	// events: recover from there, then up to there.
	Since time.Time
}

func (e *WindowTooLargeError) Error() string {
	return fmt.Sprintf("more than %d events were attempted to the endpoint in this window; one recover goes through at most %d: recover since %s (the newest of them), then the window until that time",
		e.Limit, e.Limit, e.Since.UTC().Format(time.RFC3339))
}

func (e *WindowTooLargeError) Is(target error) bool { return target == ErrWindowTooLarge }

// RecoverLog is the part of the delivery log a recover reads
// (*deliverylog.Index).
type RecoverLog interface {
	EndpointAttempts(ctx context.Context, tenant, endpointID string, q deliverylog.Query) (deliverylog.Page, error)
	Failing(ctx context.Context, tenant, endpointID string, since, until time.Time) ([]deliverylog.FailingDelivery, error)
}

// PlanRecover is the plan of a recover job of the tenant's endpoint over
// [since, until) (zero until: now): RecoverPlan of its failing deliveries.
// A window in which more than limit events were attempted to the
// endpoint is refused with a *WindowTooLargeError; limit is at most (and
// when not positive) MaxRecoverEvents.
func PlanRecover(ctx context.Context, l RecoverLog, tenant, endpointID string, since, until time.Time, limit int) ([]Item, error) {
	if limit <= 0 || limit > MaxRecoverEvents {
		limit = MaxRecoverEvents
	}
	events := map[string]bool{}
	q := deliverylog.Query{Filter: deliverylog.Filter{Since: since, Until: until}, Limit: 250}
	for {
		pg, err := l.EndpointAttempts(ctx, tenant, endpointID, q)
		if err != nil {
			return nil, err
		}
		for _, a := range pg.Data { // newest first
			if events[a.EventID] {
				continue
			}
			if len(events) == limit {
				// The next whole second after it: a time to type.
				return nil, &WindowTooLargeError{Limit: limit, Since: a.At.Truncate(time.Second).Add(time.Second)}
			}
			events[a.EventID] = true
		}
		if pg.Next == "" || len(pg.Data) == 0 {
			break
		}
		q.Cursor = pg.Next
	}
	failing, err := l.Failing(ctx, tenant, endpointID, since, until)
	if err != nil {
		return nil, err
	}
	return RecoverPlan(endpointID, failing), nil
}
