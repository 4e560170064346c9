package redislock

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/distlock/distlock"
	"github.com/distlock/distlock/driver"
	"github.com/distlock/distlock/internal/clientopen"
	"github.com/distlock/distlock/internal/rediswire"
)

// backend is the name in errors, logs and metrics.
const backend = "redis"

// Options configure a Redis driver. The zero value (or nil) is the default.
type Options struct {
	// Prefix is put in front of every key: the lock on key k is the Redis
	// key Prefix+k. Default: none, so a lock on "jobs/nightly" is the Redis
	// key "jobs/nightly", the name redsync or bsm/redislock would use.
	Prefix string
}

// Open connects to the Redis server named by a redis:// or rediss:// URL
// (see the package documentation) and returns a Client that owns the
// connection. It sends one PING, so an unreachable server is reported here
// as an error wrapping distlock.ErrUnavailable.
func Open(ctx context.Context, rawURL string, clientOpts ...distlock.Option) (*distlock.Client, error) {
	drv, err := OpenDriver(ctx, rawURL)
	return clientopen.Client(backend, drv, err, clientOpts)
}

// New returns a Client that keeps its locks on the server(s) behind client:
// a *redis.Client, a Sentinel failover client or a *redis.ClusterClient. It
// does no I/O. Closing the Client does not close client.
func New(client redis.UniversalClient, opts *Options, clientOpts ...distlock.Option) (*distlock.Client, error) {
	drv, err := NewDriver(client, opts)
	return clientopen.Client(backend, drv, err, clientOpts)
}

// OpenDriver is Open for callers that build the Client themselves (or wrap
// the driver): the driver owns its connection and closes it in Close.
func OpenDriver(ctx context.Context, rawURL string) (driver.Driver, error) {
	opt, o, err := parseURL(rawURL)
	if err != nil {
		return nil, err
	}
	if err := rediswire.CheckPrefix(o.Prefix); err != nil {
		return nil, err
	}
	client := redis.NewClient(opt)
	if err := client.Ping(ctx).Err(); err != nil {
		client.Close()
		var rerr redis.Error
		if errors.As(err, &rerr) {
			// The server answered: bad password, or a wrong db number.
			return nil, fmt.Errorf("%w: redis at %s: %w", distlock.ErrInvalid, opt.Addr, err)
		}
		return nil, fmt.Errorf("%w: redis at %s: %w", driver.ErrUnavailable, opt.Addr, err)
	}
	return newDriver(client, o, true), nil
}

// NewDriver is New for callers that build the Client themselves. The driver
// never closes client.
func NewDriver(client redis.UniversalClient, opts *Options) (driver.Driver, error) {
	if client == nil {
		return nil, fmt.Errorf("%w: nil redis client", distlock.ErrInvalid)
	}
	var o Options
	if opts != nil {
		o = *opts
	}
	if err := rediswire.CheckPrefix(o.Prefix); err != nil {
		return nil, err
	}
	return newDriver(client, o, false), nil
}

// redisDriver implements driver.Driver and driver.Queuer on one Redis
// deployment.
type redisDriver struct {
	client redis.UniversalClient
	owned  bool
	prefix string
	hub    *hub
	// calls returns every request by its ctx's end, also on a user's
	// client without ContextTimeoutEnabled; what outlives its caller runs
	// in bg, which Close waits for (at most rediswire.CloseWait).
	calls *rediswire.Calls
	bg    *rediswire.Background

	closeOnce sync.Once
	closeErr  error
}

var (
	_ driver.Driver = (*redisDriver)(nil)
	_ driver.Queuer = (*redisDriver)(nil)
)

func newDriver(client redis.UniversalClient, o Options, owned bool) *redisDriver {
	bg := &rediswire.Background{}
	return &redisDriver{client: client, owned: owned, prefix: o.Prefix, hub: newHub(client, bg),
		calls: rediswire.NewCalls(client, bg), bg: bg}
}

func (d *redisDriver) names(key string) rediswire.Names { return rediswire.NamesFor(d.prefix, key) }

// Info: PX counts milliseconds.
func (d *redisDriver) Info() driver.Info {
	return driver.Info{Name: backend, MinTTL: time.Millisecond, TTLGranularity: time.Millisecond}
}

// Acquire is one EVALSHA (see the package documentation).
func (d *redisDriver) Acquire(ctx context.Context, req driver.AcquireRequest) (driver.Lease, error) {
	l, err := rediswire.Run(ctx, d.calls, func(ctx context.Context) (driver.Lease, error) {
		return rediswire.Acquire(ctx, d.client, d.names(req.Key), req.Token, req.Owner, req.TTL)
	})
	if err != nil {
		return l, classify(err)
	}
	l.Key = req.Key
	return l, nil
}

// Release is one EVALSHA: compare the token, then hand the lock to the
// oldest live waiter or delete it.
func (d *redisDriver) Release(ctx context.Context, l driver.Lease) error {
	_, err := rediswire.Run(ctx, d.calls, func(ctx context.Context) (struct{}, error) {
		return struct{}{}, rediswire.Release(ctx, d.client, d.names(l.Key), l.Token)
	})
	return classify(err)
}

// Renew is one pipeline of EVALSHA for the whole batch: one round trip.
func (d *redisDriver) Renew(ctx context.Context, leases []driver.Lease) ([]error, error) {
	items := make([]rediswire.RenewItem, len(leases))
	for i, l := range leases {
		items[i] = rediswire.RenewItem{Names: d.names(l.Key), Token: l.Token, TTL: l.TTL}
	}
	errs, err := rediswire.Run(ctx, d.calls, func(ctx context.Context) ([]error, error) {
		return rediswire.Renew(ctx, d.client, items)
	})
	if err != nil {
		return nil, classify(err)
	}
	for i := range errs {
		errs[i] = classify(errs[i])
	}
	return errs, nil
}

// Inspect is one EVALSHA: GET, PTTL and the holder's metadata, atomically.
func (d *redisDriver) Inspect(ctx context.Context, key string) (driver.Holder, error) {
	h, err := rediswire.Run(ctx, d.calls, func(ctx context.Context) (driver.Holder, error) {
		return rediswire.Inspect(ctx, d.client, d.names(key))
	})
	return h, classify(err)
}

// Close stops the shared subscription, waits for requests still running in
// the background (at most rediswire.CloseWait: a waiter leaving its queue,
// a request whose caller's ctx ended first on a client that ignores ctx
// deadlines) and, for a driver made by Open or OpenDriver, closes its
// connection. A client passed to New stays open.
func (d *redisDriver) Close() error {
	d.closeOnce.Do(func() {
		d.hub.close()
		d.bg.Close(rediswire.CloseWait)
		if d.owned {
			d.closeErr = d.client.Close()
		}
	})
	return d.closeErr
}

// classify marks errors of requests that were surely never sent, and keeps
// the store's error in the chain.
func classify(err error) error {
	if err == nil || errors.Is(err, driver.ErrNotHeld) || errors.Is(err, driver.ErrLocked) {
		return err
	}
	return rediswire.Classify(err)
}
