package distlock

import (
	"context"
	"errors"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"
)

// metrics records through the OpenTelemetry API. Instrument names:
//
//	distlock.acquire.attempts  counter   result=acquired|locked|error
//	distlock.acquire.duration  histogram seconds, per attempt
//	distlock.renewals          counter   result=ok|error (locks renewed)
//	distlock.losses            counter
//	distlock.hold.duration     histogram seconds, acquire to release or loss
type metrics struct {
	attempts metric.Int64Counter
	acquireD metric.Float64Histogram
	renewals metric.Int64Counter
	losses   metric.Int64Counter
	holdD    metric.Float64Histogram
	backend  attribute.KeyValue
}

const instrumentationName = "github.com/distlock/distlock"

func newMetrics(mp metric.MeterProvider, backend string) metrics {
	if mp == nil {
		mp = noop.NewMeterProvider()
	}
	m := mp.Meter(instrumentationName)
	var ms metrics
	ms.backend = attribute.String("backend", backend)
	// Instrument creation only fails on invalid names, which these are not;
	// on error the API still returns a usable no-op instrument.
	ms.attempts, _ = m.Int64Counter("distlock.acquire.attempts", metric.WithDescription("Acquire attempts by result."))
	ms.acquireD, _ = m.Float64Histogram("distlock.acquire.duration", metric.WithUnit("s"), metric.WithDescription("Duration of one acquire attempt."))
	ms.renewals, _ = m.Int64Counter("distlock.renewals", metric.WithDescription("Lock renewals by result."))
	ms.losses, _ = m.Int64Counter("distlock.losses", metric.WithDescription("Locks lost while held."))
	ms.holdD, _ = m.Float64Histogram("distlock.hold.duration", metric.WithUnit("s"), metric.WithDescription("Time a lock was held."))
	return ms
}

func (m metrics) acquired(ctx context.Context, err error, d time.Duration) {
	result := "acquired"
	switch {
	case errors.Is(err, ErrLocked):
		result = "locked"
	case err != nil:
		result = "error"
	}
	ctx = context.WithoutCancel(ctx)
	opt := metric.WithAttributes(m.backend, attribute.String("result", result))
	m.attempts.Add(ctx, 1, opt)
	m.acquireD.Record(ctx, d.Seconds(), opt)
}

func (m metrics) renewed(ctx context.Context, n int, err error) {
	result := "ok"
	if err != nil {
		result = "error"
	}
	m.renewals.Add(context.WithoutCancel(ctx), int64(n), metric.WithAttributes(m.backend, attribute.String("result", result)))
}

func (m metrics) released(lost bool, held time.Duration) {
	ctx := context.Background()
	opt := metric.WithAttributes(m.backend)
	if lost {
		m.losses.Add(ctx, 1, opt)
	}
	m.holdD.Record(ctx, held.Seconds(), opt)
}
