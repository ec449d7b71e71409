package deliverer

import (
	"context"
	"fmt"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// metrics are the deliverer's instruments, under the meter
// "hookstream/deliverer".
type metrics struct {
	deliveries  metric.Int64Counter       // finished deliveries by outcome
	latency     metric.Float64Histogram   // attempt latency by outcome
	backoff     metric.Int64UpDownCounter // lanes waiting out a backoff in memory
	parked      metric.Int64Counter       // records moved to the retries topic
	dead        metric.Int64Counter       // records dead-lettered, by reason
	parkedLanes metric.Int64UpDownCounter // lanes whose records wait in the retries topic
	stallSpills metric.Int64Counter       // lanes spilled while their head request hung
	expired     metric.Int64Counter       // read-backs that found records deleted by retention
	// attrs holds the option of each known label value, built once:
	// building one per call allocates on every attempt.
	attrs map[[2]string]metric.MeasurementOption
}

func newMetrics(mp metric.MeterProvider) (*metrics, error) {
	m := mp.Meter("hookstream/deliverer")
	var x metrics
	var err error
	if x.deliveries, err = m.Int64Counter("hookstream.deliverer.deliveries", metric.WithUnit("{delivery}"),
		metric.WithDescription("Deliveries finished, by outcome: delivered, dead, deleted (endpoint gone).")); err != nil {
		return nil, fmt.Errorf("deliverer metrics: %w", err)
	}
	// The SDK's default buckets (0 to 10000) suit milliseconds; these
	// span a fast receiver to the request timeout, in seconds.
	if x.latency, err = m.Float64Histogram("hookstream.deliverer.attempt.duration", metric.WithUnit("s"),
		metric.WithDescription("Latency of delivery attempts, by outcome."),
		metric.WithExplicitBucketBoundaries(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15, 30)); err != nil {
		return nil, fmt.Errorf("deliverer metrics: %w", err)
	}
	if x.backoff, err = m.Int64UpDownCounter("hookstream.deliverer.lanes.backoff", metric.WithUnit("{lane}"),
		metric.WithDescription("Endpoint lanes waiting out a retry delay in memory.")); err != nil {
		return nil, fmt.Errorf("deliverer metrics: %w", err)
	}
	if x.parked, err = m.Int64Counter("hookstream.deliverer.parked", metric.WithUnit("{record}"),
		metric.WithDescription("Records moved to the retries topic.")); err != nil {
		return nil, fmt.Errorf("deliverer metrics: %w", err)
	}
	if x.parkedLanes, err = m.Int64UpDownCounter("hookstream.deliverer.lanes.parked", metric.WithUnit("{lane}"),
		metric.WithDescription("Endpoint lanes whose records wait in the retries topic (parked, or being read back).")); err != nil {
		return nil, fmt.Errorf("deliverer metrics: %w", err)
	}
	if x.stallSpills, err = m.Int64Counter("hookstream.deliverer.lanes.stall_spills", metric.WithUnit("{lane}"),
		metric.WithDescription("Lanes whose queue went to the retries topic while their head request hung, so that the partition kept fetching.")); err != nil {
		return nil, fmt.Errorf("deliverer metrics: %w", err)
	}
	if x.expired, err = m.Int64Counter("hookstream.deliverer.retries.expired", metric.WithUnit("{event}"),
		metric.WithDescription("Times a lane found parked records deleted by the retries topic's retention before delivery (raise retention.ms).")); err != nil {
		return nil, fmt.Errorf("deliverer metrics: %w", err)
	}
	if x.dead, err = m.Int64Counter("hookstream.deliverer.dead", metric.WithUnit("{record}"),
		metric.WithDescription("Records dead-lettered, by reason.")); err != nil {
		return nil, fmt.Errorf("deliverer metrics: %w", err)
	}
	x.attrs = map[[2]string]metric.MeasurementOption{}
	for key, values := range map[string][]string{
		"outcome": {"delivered", "dead", "deleted", "failed", "gone", "refused"},
		"reason":  {"exhausted", "disabled", "malformed"},
	} {
		for _, v := range values {
			x.attrs[[2]string{key, v}] = metric.WithAttributeSet(attribute.NewSet(attribute.String(key, v)))
		}
	}
	// Series start at 0, so that a rate or an alert sees the first event
	// rather than a series appearing.
	for _, o := range []string{"delivered", "dead", "deleted"} {
		x.deliveries.Add(bg, 0, x.attr("outcome", o))
	}
	for _, r := range []string{"exhausted", "disabled", "malformed"} {
		x.dead.Add(bg, 0, x.attr("reason", r))
	}
	x.backoff.Add(bg, 0)
	x.parked.Add(bg, 0)
	x.parkedLanes.Add(bg, 0)
	x.expired.Add(bg, 0)
	return &x, nil
}

// Metric calls need a context but record nothing from it.
var bg = context.Background()

// attr is the measurement option of the one label key=value.
func (m *metrics) attr(key, value string) metric.MeasurementOption {
	if o, ok := m.attrs[[2]string{key, value}]; ok {
		return o
	}
	return metric.WithAttributes(attribute.String(key, value))
}

func (m *metrics) finished(outcome string) {
	m.deliveries.Add(bg, 1, m.attr("outcome", outcome))
}

func (m *metrics) attempt(outcome string, d time.Duration) {
	m.latency.Record(bg, d.Seconds(), m.attr("outcome", outcome))
}

func (m *metrics) deadLettered(reason string) {
	m.dead.Add(bg, 1, m.attr("reason", reason))
	m.finished("dead")
}
