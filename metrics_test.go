package distlock_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/distlock/distlock"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

func TestMetrics(t *testing.T) {
	ctx := context.Background()
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer mp.Shutdown(ctx)

	url := "sqlite://" + filepath.ToSlash(filepath.Join(t.TempDir(), "locks.db"))
	c, err := distlock.Open(ctx, url, distlock.WithMeterProvider(mp))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	l, err := c.TryLock(ctx, "m")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.TryLock(ctx, "m"); !errors.Is(err, distlock.ErrLocked) {
		t.Fatalf("second TryLock: %v", err)
	}
	if err := l.Unlock(ctx); err != nil {
		t.Fatal(err)
	}

	var rm metricdata.ResourceMetrics
	if err := reader.Collect(ctx, &rm); err != nil {
		t.Fatal(err)
	}
	attempts := map[string]int64{}
	var holds uint64
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				if m.Name == "distlock.acquire.attempts" {
					for _, p := range d.DataPoints {
						r, _ := p.Attributes.Value(attribute.Key("result"))
						b, _ := p.Attributes.Value(attribute.Key("backend"))
						if b.AsString() != "sqlite" {
							t.Errorf("attempts recorded with backend %q", b.AsString())
						}
						attempts[r.AsString()] += p.Value
					}
				}
			case metricdata.Histogram[float64]:
				if m.Name == "distlock.hold.duration" {
					for _, p := range d.DataPoints {
						holds += p.Count
					}
				}
			}
		}
	}
	if attempts["acquired"] != 1 || attempts["locked"] != 1 {
		t.Errorf("distlock.acquire.attempts by result = %v, want acquired 1, locked 1", attempts)
	}
	if holds != 1 {
		t.Errorf("distlock.hold.duration recorded %d holds, want 1", holds)
	}
}
