package redlock_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/distlock/distlock/driver"
	"github.com/distlock/distlock/drivertest"
	"github.com/distlock/distlock/internal/testserver"
	"github.com/distlock/distlock/redlock"
)

// harness gives each NewDriver its own connections to three private nodes,
// as another process would have, and evicts by deleting the key on every
// node. Each node can sit behind a fault proxy of its own; a restart
// restarts every node, which keeps nothing (no persistence), and a rollback
// brings every node back to its saved RDB file.
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

func (h *harness) Addrs() []string {
	addrs := make([]string, len(h.c.servers))
	for i, s := range h.c.servers {
		addrs[i] = s.Addr()
	}
	return addrs
}

func (h *harness) NewDriverVia(ctx context.Context, t *testing.T, via []string) (driver.Driver, error) {
	return redlock.OpenDriver(ctx, "redlock://"+strings.Join(via, ","))
}

func (h *harness) Restart(ctx context.Context, t *testing.T) error {
	for _, s := range h.c.servers {
		s.Restart()
	}
	return nil
}

func (h *harness) Snapshot(ctx context.Context, t *testing.T) (func(context.Context) error, error) {
	snaps := make([]testserver.RedisSnapshot, len(h.c.servers))
	for i, s := range h.c.servers {
		snaps[i] = s.Snapshot()
	}
	return func(context.Context) error {
		for i, s := range h.c.servers {
			s.RestoreSnapshot(snaps[i])
		}
		return nil
	}, nil
}

func TestConformance(t *testing.T) {
	drivertest.RunConformanceTests(t, &harness{c: startCluster(t, 3)})
}
