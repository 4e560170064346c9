package etcdlock

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/distlock/distlock"
	"github.com/distlock/distlock/driver"
	"github.com/distlock/distlock/internal/clientopen"
)

// Name is the backend's name in errors, logs and metrics.
const Name = "etcd"

// MinTTL is the smallest lock TTL the driver accepts: etcd's minimum lease
// TTL with its default timing (heartbeat 100ms, election timeout 1s) is
// 1.5 election timeouts, rounded up to whole seconds. A server with a longer
// election timeout grants longer leases than asked; the lock's Lease.TTL then
// reports what the server granted.
const MinTTL = 2 * time.Second

// DefaultDialTimeout bounds the connection attempt of Open.
const DefaultDialTimeout = 5 * time.Second

// Options configure a driver. A nil *Options means all defaults.
type Options struct {
	// Prefix is put in front of every lock name to make the etcd key prefix
	// of the lock (default none: the lock named K is exactly what
	// `etcdctl lock K` and concurrency.NewMutex(session, "K") take).
	Prefix string
}

// Config is what Open needs to make its own etcd client.
type Config struct {
	Endpoints   []string
	Username    string
	Password    string
	TLS         *tls.Config   // nil: plain connections
	DialTimeout time.Duration // default DefaultDialTimeout
	Options
}

// Open connects to the etcd cluster cfg names and returns a Client that
// takes locks in it. Client.Close closes the connection. Cost: the
// connection, and a status call to check that the cluster answers.
func Open(ctx context.Context, cfg Config, clientOpts ...distlock.Option) (*distlock.Client, error) {
	drv, err := OpenDriver(ctx, cfg)
	return clientopen.Client(Name, drv, err, clientOpts)
}

// New returns a Client that takes locks through cli, the caller's etcd
// client, which the caller still owns: Client.Close neither closes cli nor
// cancels anything the caller does with it. It does no I/O: the lease is
// granted when the first lock is taken.
func New(cli *clientv3.Client, opts *Options, clientOpts ...distlock.Option) (*distlock.Client, error) {
	drv, err := NewDriver(cli, opts)
	return clientopen.Client(Name, drv, err, clientOpts)
}

// OpenDriver is Open without the Client: the bare driver, for
// distlock.NewClient and conformance harnesses. Close closes its client.
func OpenDriver(ctx context.Context, cfg Config) (driver.Driver, error) {
	if len(cfg.Endpoints) == 0 {
		return nil, fmt.Errorf("%w: no etcd endpoints", distlock.ErrInvalid)
	}
	dial := cfg.DialTimeout
	if dial <= 0 {
		dial = DefaultDialTimeout
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   cfg.Endpoints,
		Username:    cfg.Username,
		Password:    cfg.Password,
		TLS:         cfg.TLS,
		DialTimeout: dial,
		Context:     context.WithoutCancel(ctx),
		Logger:      zap.NewNop(),
	})
	if err != nil {
		return nil, fmt.Errorf("%w: etcd client: %w", driver.ErrUnavailable, err)
	}
	// clientv3.New does not wait for a connection: ask one member for its
	// status so that a wrong address fails here, not at the first lock.
	if err := probe(ctx, cli, cfg.Endpoints, dial); err != nil {
		cli.Close()
		return nil, err
	}
	d, err := newDriver(cli, &cfg.Options, true)
	if err != nil {
		cli.Close()
		return nil, err
	}
	return d, nil
}

func probe(ctx context.Context, cli *clientv3.Client, endpoints []string, timeout time.Duration) error {
	pctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var errs []error
	for _, ep := range endpoints {
		if _, err := cli.Status(pctx, ep); err == nil {
			return nil
		} else {
			errs = append(errs, fmt.Errorf("%s: %w", ep, err))
		}
		if pctx.Err() != nil {
			break
		}
	}
	return fmt.Errorf("%w: no etcd endpoint answers: %w", driver.ErrUnavailable, errors.Join(errs...))
}

// NewDriver is New without the Client. Its Close revokes the driver's lease
// but leaves cli open.
func NewDriver(cli *clientv3.Client, opts *Options) (driver.Driver, error) {
	if cli == nil {
		return nil, fmt.Errorf("%w: nil *clientv3.Client", distlock.ErrInvalid)
	}
	return newDriver(cli, opts, false)
}

func newDriver(cli *clientv3.Client, opts *Options, owned bool) (*etcdDriver, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	life, end := context.WithCancel(context.Background())
	return &etcdDriver{
		life:    life,
		endLife: end,
		cli:     cli,
		owned:   owned,
		prefix:  o.Prefix,
		slots:   make(map[string]*slot),
		tokens:  make(map[string]*entry),
		leases:  make(map[*lease]struct{}),
		closing: make(chan struct{}),
	}, nil
}

// etcdDriver keeps one lease for all its new locks (the lease in force).
// Each lock name it uses has one etcd key, name/<lease id in hex>, so the
// driver lets one request at a time use a name (its slot); other requests
// of the same driver for that name wait their turn in the driver (Lock) or
// see contention (TryLock). After a write with an unknown outcome the lease
// in force is retired and the next request is granted a new one.
type etcdDriver struct {
	cli    *clientv3.Client
	owned  bool
	prefix string

	grantMu sync.Mutex // one lease grant at a time

	mu      sync.Mutex
	lease   *lease              // the lease in force; nil before first use, after a loss or a retirement
	leases  map[*lease]struct{} // every lease granted and not known to be gone (Close revokes them)
	slots   map[string]*slot    // by lock name
	tokens  map[string]*entry   // by token: the entries holding or waiting
	closed  bool
	closing chan struct{}
	life    context.Context // ends when the driver closes: background work runs under it
	endLife context.CancelFunc
	bg      sync.WaitGroup // keep-alive watchers, clean-ups
}

var (
	_ driver.Driver = (*etcdDriver)(nil)
	_ driver.Queuer = (*etcdDriver)(nil)
)

func (d *etcdDriver) Info() driver.Info {
	return driver.Info{Name: Name, MinTTL: MinTTL, TTLGranularity: time.Second}
}

// Close revokes the driver's leases (the one in force and any retired one
// still alive or not yet revoked), which deletes every key of this driver
// at once, stops their keep-alives and, for a driver made by Open, closes
// the client. Cost: one round trip per lease (the revokes, sent together),
// bounded by 3s.
func (d *etcdDriver) Close() error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil
	}
	d.closed = true
	close(d.closing)
	d.endLife()
	leases := make([]*lease, 0, len(d.leases))
	for l := range d.leases {
		leases = append(leases, l)
	}
	d.lease = nil
	d.mu.Unlock()

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	errs := make([]error, len(leases))
	var wg sync.WaitGroup
	for i, l := range leases {
		l.stop()
		wg.Go(func() {
			if _, rerr := d.cli.Revoke(ctx, l.id); rerr != nil && !isLeaseNotFound(rerr) {
				// The keys go when the lease expires by itself.
				errs[i] = fmt.Errorf("%w: revoke lease %x: %w", driver.ErrUnavailable, int64(l.id), rerr)
			}
		})
	}
	wg.Wait()
	cancel()
	for _, l := range leases {
		l.markDead(errors.New("driver closed"))
	}
	err := errors.Join(errs...)
	d.bg.Wait()
	if d.owned {
		if cerr := d.cli.Close(); cerr != nil && !errors.Is(cerr, context.Canceled) {
			err = errors.Join(err, cerr)
		}
	}
	return err
}

// errClosed is returned by calls on a closed driver.
var errClosed = fmt.Errorf("%w: etcd driver is closed", driver.ErrUnavailable)

// goBackground runs f on a goroutine Close waits for; false if closed.
func (d *etcdDriver) goBackground(f func()) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.goLocked(f)
}

// goLocked is goBackground with d.mu held.
func (d *etcdDriver) goLocked(f func()) bool {
	if d.closed {
		return false
	}
	d.bg.Add(1)
	go func() {
		defer d.bg.Done()
		f()
	}()
	return true
}
