package redlock

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/distlock/distlock"
	"github.com/distlock/distlock/driver"
	"github.com/distlock/distlock/internal/clientopen"
)

// Name is the backend's name in errors, logs and metrics.
const Name = "redlock"

// MinTTL is the smallest TTL a Redlock lock may have. Below it the clock
// drift allowance and the per-node time limit (5ms at least) leave too
// little of the TTL to hold the lock with.
const MinTTL = 100 * time.Millisecond

// Options configure a driver. A nil *Options means all defaults.
type Options struct {
	// Prefix is put before every lock key to make the Redis key (default
	// none), as in the redis:// driver, so both name a key alike.
	Prefix string
	// NodeTimeout bounds each request to one node during an acquire or a
	// renewal. Zero means max(TTL/50, 5ms) for the lock's TTL: a node that
	// does not answer in time counts as a failed vote, and the time it
	// takes comes out of the lock's validity, so it must be a small
	// fraction of the TTL. Release and Inspect, which race no validity
	// clock, wait at least 250ms per node.
	NodeTimeout time.Duration
}

// Per-node time limits when Options.NodeTimeout is zero.
const (
	nodeTimeoutDivisor = 50                     // TTL/50: at most 2% of the TTL lost to a dead node
	minNodeTimeout     = 5 * time.Millisecond   // a round trip on a LAN, with room
	slowNodeTimeout    = 250 * time.Millisecond // floor for Release and Inspect
)

func (o *Options) withDefaults() Options {
	var r Options
	if o != nil {
		r = *o
	}
	return r
}

// Open connects to the Redis nodes named by a redlock:// URL (see the
// package documentation) and returns a Client that takes locks on a majority
// of them. Client.Close closes the connections.
func Open(ctx context.Context, storeURL string, clientOpts ...distlock.Option) (*distlock.Client, error) {
	return distlock.Open(ctx, storeURL, clientOpts...)
}

// OpenDriver is Open without the Client: the bare driver, for
// distlock.NewClient and conformance harnesses. Its Close closes the
// connections it opened.
func OpenDriver(ctx context.Context, storeURL string) (driver.Driver, error) {
	u, err := parseStoreURL(storeURL)
	if err != nil {
		return nil, err
	}
	return openURL(ctx, u)
}

// New returns a Client that takes locks on a majority of clients, one per
// independent Redis master (not replicas of one another, not nodes of one
// Cluster: each must be a separate failure domain that votes once). Their
// number must be odd and at least 3. The caller keeps ownership of the
// clients: Client.Close does not close them.
//
// New checks, with one INFO round trip per node, that no server is given
// twice (by its run_id), and fails if fewer than a majority answer. Give
// the clients ContextTimeoutEnabled: true so that per-node time limits
// bound their socket reads; without it a node that stops answering costs a
// goroutine until the client's own ReadTimeout, though the lock operation
// itself never waits past the limit.
func New(ctx context.Context, clients []redis.UniversalClient, opts *Options, clientOpts ...distlock.Option) (*distlock.Client, error) {
	drv, err := NewDriver(ctx, clients, opts)
	return clientopen.Client(Name, drv, err, clientOpts)
}

// NewDriver is New without the Client. Its Close leaves the clients open.
func NewDriver(ctx context.Context, clients []redis.UniversalClient, opts *Options) (driver.Driver, error) {
	if err := checkCount(len(clients)); err != nil {
		return nil, err
	}
	nodes := make([]*node, len(clients))
	seen := make(map[string]string, len(clients))
	for i, c := range clients {
		if c == nil {
			return nil, fmt.Errorf("%w: redlock client %d of %d is nil", distlock.ErrInvalid, i+1, len(clients))
		}
		for j := range i {
			if clients[j] == c {
				return nil, fmt.Errorf("%w: redlock clients %d and %d are the same client: its node would vote twice", distlock.ErrInvalid, j+1, i+1)
			}
		}
		name := fmt.Sprintf("node %d", i+1)
		if rc, ok := c.(*redis.Client); ok {
			addr := rc.Options().Addr
			name = addr
			if id, _, err := nodeID(addr); err == nil {
				if first, dup := seen[id]; dup {
					return nil, duplicateNode(first, addr)
				}
				seen[id] = addr
			}
		}
		nodes[i] = &node{name: name, c: c}
	}
	return newDriver(ctx, nodes, opts.withDefaults(), false)
}

// openNodes makes a client per node from go-redis options and the driver
// that owns them.
func openNodes(ctx context.Context, nodeOpts []*redis.Options, opts Options) (driver.Driver, error) {
	nodes := make([]*node, len(nodeOpts))
	for i, o := range nodeOpts {
		nodes[i] = &node{name: o.Addr, c: redis.NewClient(o)}
	}
	return newDriver(ctx, nodes, opts, true)
}
