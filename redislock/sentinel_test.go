package redislock_test

import (
	"context"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/distlock/distlock/driver"
	"github.com/distlock/distlock/drivertest"
	"github.com/distlock/distlock/internal/testserver"
	"github.com/distlock/distlock/redislock"
)

// sentinelHarness runs the suite through New with a Sentinel failover
// client (redis.NewFailoverClient), one per driver, as separate processes
// would: the client asks the Sentinel for the master, then talks to it.
type sentinelHarness struct {
	sentinel string
	admin    *redis.Client // on the master
}

const sentinelMaster = "distlock-test"

func (h *sentinelHarness) NewDriver(ctx context.Context, t *testing.T) (driver.Driver, error) {
	c := redis.NewFailoverClient(&redis.FailoverOptions{MasterName: sentinelMaster, SentinelAddrs: []string{h.sentinel}})
	t.Cleanup(func() { c.Close() })
	return redislock.NewDriver(c, nil)
}

func (h *sentinelHarness) Evict(ctx context.Context, t *testing.T, key string) error {
	return h.admin.Del(ctx, key).Err()
}

// TestConformanceSentinel: the suite through a Sentinel-managed master.
// (What a failover does to held locks is in the README: replication is
// asynchronous, so a promoted replica may not have them.)
func TestConformanceSentinel(t *testing.T) {
	master := testserver.StartRedis(t, testserver.Private())
	sentinel := testserver.StartRedisSentinel(t, master, sentinelMaster)
	admin := redis.NewClient(&redis.Options{Addr: master.Addr()})
	t.Cleanup(func() { admin.Close() })
	drivertest.RunConformanceTests(t, &sentinelHarness{sentinel: sentinel.Addr(), admin: admin})
	// The locks went to the master the Sentinel named.
	if n, err := admin.Info(t.Context(), "commandstats").Result(); err != nil || !containsEvalsha(n) {
		t.Errorf("the master ran no EVALSHA: the clients did not reach it through the Sentinel (%v)", err)
	}
}
