package redislock_test

import (
	"context"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/distlock/distlock/driver"
	"github.com/distlock/distlock/drivertest"
	"github.com/distlock/distlock/internal/rediswire"
	"github.com/distlock/distlock/internal/testserver"
	"github.com/distlock/distlock/redislock"
)

// harness opens each driver through a URL of its own, as a separate process
// would, and evicts with a plain DEL of the lock key through a client of its
// own (as an operator, or a redsync user's expiry, would).
type harness struct {
	url   string
	admin *redis.Client
}

func (h *harness) NewDriver(ctx context.Context, t *testing.T) (driver.Driver, error) {
	return redislock.OpenDriver(ctx, h.url)
}

func (h *harness) Evict(ctx context.Context, t *testing.T, key string) error {
	return h.admin.Del(ctx, rediswire.NamesFor("", key).Lock).Err()
}

func TestConformance(t *testing.T) {
	srv := testserver.StartRedis(t, testserver.Private())
	admin := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	t.Cleanup(func() { admin.Close() })
	drivertest.RunConformanceTests(t, &harness{url: "redis://" + srv.Addr(), admin: admin})
}

// The same suite through New with a user's client, which Close must leave
// open.
type userClientHarness struct {
	client *redis.Client
}

func (h *userClientHarness) NewDriver(ctx context.Context, t *testing.T) (driver.Driver, error) {
	return redislock.NewDriver(h.client, &redislock.Options{Prefix: "user:"})
}

func (h *userClientHarness) Evict(ctx context.Context, t *testing.T, key string) error {
	return h.client.Del(ctx, "user:"+key).Err()
}

func TestConformanceUserClient(t *testing.T) {
	srv := testserver.StartRedis(t, testserver.Private())
	client := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	t.Cleanup(func() { client.Close() })
	drivertest.RunConformanceTests(t, &userClientHarness{client: client})
	if err := client.Ping(t.Context()).Err(); err != nil {
		t.Fatalf("the user's client was closed: %v", err)
	}
}
