package redislock_test

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/distlock/distlock/driver"
	"github.com/distlock/distlock/drivertest"
	"github.com/distlock/distlock/internal/rediswire"
	"github.com/distlock/distlock/internal/testserver"
	"github.com/distlock/distlock/redislock"
)

// harness opens each driver through a URL of its own, as a separate process
// would, and evicts with a plain DEL of the lock key through a client of its
// own (as an operator, or a redsync user's expiry, would). Its server keeps
// its keys in an RDB file, so that it can be restarted and rolled back to a
// saved RDB file, as from a backup.
type harness struct {
	srv   *testserver.Redis
	admin *redis.Client
}

func (h *harness) NewDriver(ctx context.Context, t *testing.T) (driver.Driver, error) {
	return redislock.OpenDriver(ctx, "redis://"+h.srv.Addr())
}

func (h *harness) Evict(ctx context.Context, t *testing.T, key string) error {
	return h.admin.Del(ctx, rediswire.NamesFor("", key).Lock).Err()
}

func (h *harness) Addrs() []string { return []string{h.srv.Addr()} }

func (h *harness) NewDriverVia(ctx context.Context, t *testing.T, via []string) (driver.Driver, error) {
	return redislock.OpenDriver(ctx, "redis://"+via[0])
}

// Restart stops the server gracefully (it saves its keys) and starts it
// again.
func (h *harness) Restart(ctx context.Context, t *testing.T) error {
	h.srv.Restart()
	return nil
}

// Snapshot saves the keys; the rollback kills the server and starts it on
// the saved RDB file.
func (h *harness) Snapshot(ctx context.Context, t *testing.T) (func(context.Context) error, error) {
	snap := h.srv.Snapshot()
	return func(context.Context) error {
		h.srv.RestoreSnapshot(snap)
		return nil
	}, nil
}

func TestConformance(t *testing.T) {
	srv := testserver.StartRedis(t, testserver.Private(), testserver.Persistent())
	admin := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	t.Cleanup(func() { admin.Close() })
	drivertest.RunConformanceTests(t, &harness{srv: srv, admin: admin})
}

// userClientOptions are a user's own go-redis options as a driver must
// survive them: no ContextTimeoutEnabled, so go-redis lets its own timeouts
// win over a ctx's deadline, and a long ReadTimeout.
func userClientOptions(addr string) *redis.Options {
	return &redis.Options{Addr: addr, ReadTimeout: 10 * time.Second}
}

// The same suite through New with a user's client, which Close must leave
// open. Its restarts and rollbacks are TestConformance's (the same server
// code); its network faults are its own, as the user's client waits on its
// own terms.
type userClientHarness struct {
	srv    *testserver.Redis
	client *redis.Client
}

func (h *userClientHarness) NewDriver(ctx context.Context, t *testing.T) (driver.Driver, error) {
	return redislock.NewDriver(h.client, &redislock.Options{Prefix: "user:"})
}

func (h *userClientHarness) Evict(ctx context.Context, t *testing.T, key string) error {
	return h.client.Del(ctx, "user:"+key).Err()
}

func (h *userClientHarness) Addrs() []string { return []string{h.srv.Addr()} }

// NewDriverVia makes a user's client of the same options on the proxy,
// closed by the harness after the driver (which leaves it open).
func (h *userClientHarness) NewDriverVia(ctx context.Context, t *testing.T, via []string) (driver.Driver, error) {
	client := redis.NewClient(userClientOptions(via[0]))
	t.Cleanup(func() { client.Close() })
	return redislock.NewDriver(client, &redislock.Options{Prefix: "user:"})
}

func (h *userClientHarness) Lacks() map[string]string {
	return map[string]string{
		"restart":  "the server code is TestConformance's, which restarts it",
		"rollback": "the server code is TestConformance's, which rolls it back",
	}
}

func TestConformanceUserClient(t *testing.T) {
	srv := testserver.StartRedis(t, testserver.Private())
	client := redis.NewClient(userClientOptions(srv.Addr()))
	t.Cleanup(func() { client.Close() })
	drivertest.RunConformanceTests(t, &userClientHarness{srv: srv, client: client})
	if err := client.Ping(t.Context()).Err(); err != nil {
		t.Fatalf("the user's client was closed: %v", err)
	}
}
