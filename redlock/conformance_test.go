package redlock_test

import (
	"context"
	"testing"
	"time"

	"github.com/distlock/distlock/driver"
	"github.com/distlock/distlock/drivertest"
	"github.com/distlock/distlock/redlock"
)

// harness gives each NewDriver its own connections to three private nodes,
// as another process would have, and evicts by deleting the key on every
// node.
type harness struct{ c *cluster }

func (h *harness) NewDriver(ctx context.Context, t *testing.T) (driver.Driver, error) {
	return redlock.OpenDriver(ctx, h.c.url())
}

func (h *harness) Evict(ctx context.Context, t *testing.T, key string) error {
	return h.c.evict(ctx, "", key)
}

// TTL: 1s keeps the suite short while leaving the default per-node limit
// (TTL/50 = 20ms) room on a loaded machine under -race.
func (h *harness) TTL() time.Duration { return time.Second }

func TestConformance(t *testing.T) {
	drivertest.RunConformanceTests(t, &harness{c: startCluster(t, 3)})
}
