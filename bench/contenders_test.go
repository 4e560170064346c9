package bench

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	bsmlock "github.com/bsm/redislock"
	"github.com/go-redsync/redsync/v4"
	redsyncgoredis "github.com/go-redsync/redsync/v4/redis/goredis/v9"
	"github.com/redis/go-redis/v9"

	"github.com/distlock/distlock"
	"github.com/distlock/distlock/driver"
	"github.com/distlock/distlock/redislock"
)

// benchTTL is every contender's lock TTL: long enough never to expire
// during a critical section.
const benchTTL = 10 * time.Second

// A locker is one goroutine's lock library, on a Redis client of its own.
type locker interface {
	// lock blocks until key is held or ctx ends, and returns the unlock.
	lock(ctx context.Context, key string) (func(context.Context) error, error)
	close()
}

// A contender is a lock library in a configuration.
type contender struct {
	name string
	make func(addr string, rt *roundTrips) (locker, error)
}

// newRedis is every contender's client: go-redis's defaults, with
// ContextTimeoutEnabled on, as distlock's docs advise (the peers are
// indifferent to it; without it, go-redis ignores ctx deadlines and
// distlock runs a call with a short deadline beside its caller, which
// plainRedis measures).
func newRedis(addr string, rt *roundTrips) *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: addr, ContextTimeoutEnabled: true})
	c.AddHook(rt)
	return c
}

// plainRedis is a client with go-redis's defaults only.
func plainRedis(addr string, rt *roundTrips) *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: addr})
	c.AddHook(rt)
	return c
}

// floor: a raw SET NX PX, polled every millisecond when taken, and a DEL.
type floorLocker struct{ rc *redis.Client }

func (f *floorLocker) lock(ctx context.Context, key string) (func(context.Context) error, error) {
	for {
		ok, err := f.rc.SetNX(ctx, key, "token", benchTTL).Result()
		if err != nil {
			return nil, err
		}
		if ok {
			return func(ctx context.Context) error { return f.rc.Del(ctx, key).Err() }, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Millisecond):
		}
	}
}

func (f *floorLocker) close() { f.rc.Close() }

type distlockLocker struct {
	rc *redis.Client
	c  *distlock.Client
}

func (d *distlockLocker) lock(ctx context.Context, key string) (func(context.Context) error, error) {
	l, err := d.c.Lock(ctx, key)
	if err != nil {
		return nil, err
	}
	return l.Unlock, nil
}

func (d *distlockLocker) close() { d.c.Close(); d.rc.Close() }

// driverLocker is distlock's Redis driver without the portable layer: one
// Acquire script and one Release script, to tell the two layers' costs apart.
type driverLocker struct {
	rc  *redis.Client
	drv driver.Driver
	n   atomic.Int64
}

func (d *driverLocker) lock(ctx context.Context, key string) (func(context.Context) error, error) {
	req := driver.AcquireRequest{Key: key, Token: "bench-" + strconv.FormatInt(d.n.Add(1), 10), TTL: benchTTL}
	l, err := d.drv.Acquire(ctx, req)
	if err != nil {
		return nil, err
	}
	return func(ctx context.Context) error { return d.drv.Release(ctx, l) }, nil
}

func (d *driverLocker) close() { d.drv.Close(); d.rc.Close() }

type redsyncLocker struct {
	rc   *redis.Client
	rs   *redsync.Redsync
	opts []redsync.Option
}

func (r *redsyncLocker) lock(ctx context.Context, key string) (func(context.Context) error, error) {
	for {
		m := r.rs.NewMutex(key, append([]redsync.Option{redsync.WithExpiry(benchTTL)}, r.opts...)...)
		err := m.LockContext(ctx)
		if err == nil {
			return func(ctx context.Context) error { _, err := m.UnlockContext(ctx); return err }, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		var taken *redsync.ErrTaken
		if !errors.Is(err, redsync.ErrFailed) && !errors.As(err, &taken) {
			return nil, err
		}
		// Out of tries: a caller of redsync tries again.
	}
}

func (r *redsyncLocker) close() { r.rc.Close() }

type bsmLocker struct {
	rc    *redis.Client
	c     *bsmlock.Client
	retry time.Duration
}

func (b *bsmLocker) lock(ctx context.Context, key string) (func(context.Context) error, error) {
	for {
		l, err := b.c.Obtain(ctx, key, benchTTL, &bsmlock.Options{RetryStrategy: bsmlock.LinearBackoff(b.retry)})
		if err == nil {
			return l.Release, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if !errors.Is(err, bsmlock.ErrNotObtained) && !errors.Is(err, context.DeadlineExceeded) {
			return nil, err
		}
	}
}

func (b *bsmLocker) close() { b.rc.Close() }

var (
	floorContender = contender{"floor: SET NX PX + DEL (1 ms poll)", func(addr string, rt *roundTrips) (locker, error) {
		return &floorLocker{newRedis(addr, rt)}, nil
	}}
	distlockContender = contender{"distlock redislock", func(addr string, rt *roundTrips) (locker, error) {
		rc := newRedis(addr, rt)
		c, err := redislock.New(rc, nil, distlock.WithTTL(benchTTL))
		if err != nil {
			rc.Close()
			return nil, err
		}
		return &distlockLocker{rc, c}, nil
	}}
	distlockPlainContender = contender{"distlock redislock, client without ContextTimeoutEnabled", func(addr string, rt *roundTrips) (locker, error) {
		rc := plainRedis(addr, rt)
		c, err := redislock.New(rc, nil, distlock.WithTTL(benchTTL))
		if err != nil {
			rc.Close()
			return nil, err
		}
		return &distlockLocker{rc, c}, nil
	}}
	driverContender = contender{"distlock driver alone (TryLock path, no Client)", func(addr string, rt *roundTrips) (locker, error) {
		rc := newRedis(addr, rt)
		drv, err := redislock.NewDriver(rc, nil)
		if err != nil {
			rc.Close()
			return nil, err
		}
		return &driverLocker{rc: rc, drv: drv}, nil
	}}
	redsyncDefault = contender{"redsync (defaults)", func(addr string, rt *roundTrips) (locker, error) {
		rc := newRedis(addr, rt)
		return &redsyncLocker{rc: rc, rs: redsync.New(redsyncgoredis.NewPool(rc))}, nil
	}}
	redsyncTuned = contender{"redsync (retry 1 ms)", func(addr string, rt *roundTrips) (locker, error) {
		rc := newRedis(addr, rt)
		return &redsyncLocker{rc: rc, rs: redsync.New(redsyncgoredis.NewPool(rc)),
			opts: []redsync.Option{redsync.WithRetryDelay(time.Millisecond), redsync.WithTries(math.MaxInt32)}}, nil
	}}
	bsmDefault = contender{"bsm/redislock (linear 100 ms, README)", func(addr string, rt *roundTrips) (locker, error) {
		rc := newRedis(addr, rt)
		return &bsmLocker{rc: rc, c: bsmlock.New(rc), retry: 100 * time.Millisecond}, nil
	}}
	bsmTuned = contender{"bsm/redislock (linear 1 ms)", func(addr string, rt *roundTrips) (locker, error) {
		rc := newRedis(addr, rt)
		return &bsmLocker{rc: rc, c: bsmlock.New(rc), retry: time.Millisecond}, nil
	}}
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
// the server ran, those run inside scripts included (and the INFO itself).
func serverCommands(ctx context.Context, c *redis.Client) (int64, error) {
	info, err := c.Info(ctx, "commandstats").Result()
	if err != nil {
		return 0, err
	}
	var total int64
	for _, line := range strings.Split(info, "\n") {
		if !strings.HasPrefix(line, "cmdstat_") {
			continue
		}
		_, rest, ok := strings.Cut(line, ":calls=")
		if !ok {
			return 0, fmt.Errorf("commandstats line %q", line)
		}
		n, err := strconv.ParseInt(strings.SplitN(rest, ",", 2)[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("commandstats line %q: %v", line, err)
		}
		total += n
	}
	return total, nil
}
