package redislock

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/distlock/distlock"
	"github.com/distlock/distlock/driver"
	"github.com/distlock/distlock/internal/testserver"
)

// roundTrips counts the requests a go-redis client sends: one per command,
// one per pipeline.
type roundTrips struct{ n atomic.Int64 }

func (r *roundTrips) DialHook(next redis.DialHook) redis.DialHook { return next }

func (r *roundTrips) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		r.n.Add(1)
		return next(ctx, cmd)
	}
}

func (r *roundTrips) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		r.n.Add(1)
		return next(ctx, cmds)
	}
}

// serverCommands is the total of calls in INFO commandstats: every command
// the server ran, those inside scripts included.
func serverCommands(ctx context.Context, c *redis.Client) int64 {
	info := c.Info(ctx, "commandstats").Val()
	var total int64
	for _, line := range strings.Split(info, "\n") {
		if !strings.HasPrefix(line, "cmdstat_") {
			continue
		}
		_, rest, _ := strings.Cut(line, ":calls=")
		n, _ := strconv.ParseInt(strings.SplitN(rest, ",", 2)[0], 10, 64)
		total += n
	}
	return total
}

// benchServer starts a private server and an admin client for INFO.
func benchServer(b testing.TB) (addr string, admin *redis.Client) {
	srv := testserver.StartRedis(b, testserver.Private())
	admin = redis.NewClient(&redis.Options{Addr: srv.Addr()})
	b.Cleanup(func() { admin.Close() })
	return srv.Addr(), admin
}

// measure runs the benchmark loop and reports round trips and server
// commands per operation (the INFO call itself is subtracted).
func measure(b *testing.B, admin *redis.Client, rt *roundTrips, op func(i int)) {
	ctx := context.Background()
	before := serverCommands(ctx, admin)
	rt.n.Store(0)
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		op(i)
	}
	b.StopTimer()
	after := serverCommands(ctx, admin) - 1
	b.ReportMetric(float64(rt.n.Load())/float64(b.N), "roundtrips/op")
	b.ReportMetric(float64(after-before)/float64(b.N), "servercmds/op")
}

// BenchmarkFloorSetNXDel is the floor every lock is compared with: a raw
// SET NX PX and a DEL, two round trips, no token check, no fence.
func BenchmarkFloorSetNXDel(b *testing.B) {
	addr, admin := benchServer(b)
	rt := &roundTrips{}
	c := redis.NewClient(&redis.Options{Addr: addr})
	defer c.Close()
	c.AddHook(rt)
	ctx := context.Background()
	measure(b, admin, rt, func(int) {
		if ok, err := c.SetNX(ctx, "floor", "token", 10*time.Second).Result(); err != nil || !ok {
			b.Fatal(ok, err)
		}
		if err := c.Del(ctx, "floor").Err(); err != nil {
			b.Fatal(err)
		}
	})
}

func benchClient(b *testing.B, addr string) (*distlock.Client, *roundTrips) {
	rt := &roundTrips{}
	rc := redis.NewClient(&redis.Options{Addr: addr})
	rc.AddHook(rt)
	c, err := New(rc, nil, distlock.WithTTL(10*time.Second))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close(); rc.Close() })
	return c, rt
}

// BenchmarkTryLockUnlock: uncontended TryLock and Unlock, two round trips
// (one EVALSHA each).
func BenchmarkTryLockUnlock(b *testing.B) {
	addr, admin := benchServer(b)
	c, rt := benchClient(b, addr)
	ctx := context.Background()
	measure(b, admin, rt, func(int) {
		l, err := c.TryLock(ctx, "k")
		if err != nil {
			b.Fatal(err)
		}
		if err := l.Unlock(ctx); err != nil {
			b.Fatal(err)
		}
	})
}

// BenchmarkLockUnlock: uncontended blocking Lock and Unlock, also two
// round trips.
func BenchmarkLockUnlock(b *testing.B) {
	addr, admin := benchServer(b)
	c, rt := benchClient(b, addr)
	ctx := context.Background()
	measure(b, admin, rt, func(int) {
		l, err := c.Lock(ctx, "k")
		if err != nil {
			b.Fatal(err)
		}
		if err := l.Unlock(ctx); err != nil {
			b.Fatal(err)
		}
	})
}

// BenchmarkRenew100: one renewal of 100 locks, one pipeline (one round
// trip) whatever the number of locks.
func BenchmarkRenew100(b *testing.B) {
	addr, admin := benchServer(b)
	rt := &roundTrips{}
	rc := redis.NewClient(&redis.Options{Addr: addr})
	defer rc.Close()
	rc.AddHook(rt)
	drv, _ := NewDriver(rc, nil)
	defer drv.Close()
	ctx := context.Background()
	leases := make([]driver.Lease, 100)
	for i := range leases {
		l, err := drv.Acquire(ctx, driver.AcquireRequest{Key: fmt.Sprint("r", i), Token: fmt.Sprint("t", i), TTL: time.Minute})
		if err != nil {
			b.Fatal(err)
		}
		leases[i] = l
	}
	measure(b, admin, rt, func(int) {
		errs, err := drv.Renew(ctx, leases)
		if err != nil || errs[0] != nil {
			b.Fatal(errs, err)
		}
	})
}

// BenchmarkDriverAcquireRelease: the driver alone, without the portable
// layer, to separate the cost of the scripts from the Client's.
func BenchmarkDriverAcquireRelease(b *testing.B) {
	addr, admin := benchServer(b)
	rt := &roundTrips{}
	rc := redis.NewClient(&redis.Options{Addr: addr})
	defer rc.Close()
	rc.AddHook(rt)
	drv, _ := NewDriver(rc, nil)
	defer drv.Close()
	ctx := context.Background()
	measure(b, admin, rt, func(i int) {
		l, err := drv.Acquire(ctx, driver.AcquireRequest{Key: "k", Token: "t", TTL: 10 * time.Second})
		if err != nil {
			b.Fatal(err)
		}
		if err := drv.Release(ctx, l); err != nil {
			b.Fatal(err)
		}
	})
}
