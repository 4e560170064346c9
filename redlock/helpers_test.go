package redlock_test

import (
	"context"
	"net"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/distlock/distlock/internal/rediswire"
	"github.com/distlock/distlock/internal/testserver"
)

// cluster is n private redis-servers, each an independent node.
type cluster struct {
	servers []*testserver.Redis
	admin   []*redis.Client // one plain client per node, for checks behind the driver's back
}

// startCluster starts n private redis-servers at once (each start waits
// for its server's log and a PING, so starting them in turn would cost n
// times as long).
func startCluster(t testing.TB, n int) *cluster {
	t.Helper()
	c := &cluster{servers: make([]*testserver.Redis, n)}
	for i := range n {
		// StartRedis must run on the test's goroutine (it may t.Fatal).
		c.servers[i] = testserver.StartRedis(t, testserver.Private())
	}
	for _, s := range c.servers {
		cl := redis.NewClient(&redis.Options{Addr: s.Addr(), MaxRetries: -1})
		t.Cleanup(func() { cl.Close() })
		c.admin = append(c.admin, cl)
	}
	return c
}

// url is the redlock URL of the cluster's nodes.
func (c *cluster) url(params ...string) string {
	addrs := make([]string, len(c.servers))
	for i, s := range c.servers {
		addrs[i] = s.Addr()
	}
	u := "redlock://" + strings.Join(addrs, ",")
	if len(params) > 0 {
		u += "?" + strings.Join(params, "&")
	}
	return u
}

// evict deletes key's lock on every node, as an operator would.
func (c *cluster) evict(ctx context.Context, prefix, key string) error {
	n := rediswire.NamesFor(prefix, key)
	for _, a := range c.admin {
		if err := a.Del(ctx, n.Lock, n.Record).Err(); err != nil {
			return err
		}
	}
	return nil
}

// holders counts the nodes (of those that answer) on which key is held.
func (c *cluster) holders(ctx context.Context, prefix, key string) int {
	n := rediswire.NamesFor(prefix, key)
	held := 0
	for _, a := range c.admin {
		if a.Exists(ctx, n.Lock).Val() == 1 {
			held++
		}
	}
	return held
}

// clientsFor makes a client per node, closed when the test ends.
func clientsFor(t *testing.T, c *cluster) []redis.UniversalClient {
	out := make([]redis.UniversalClient, len(c.servers))
	for i, s := range c.servers {
		cl := redis.NewClient(&redis.Options{Addr: s.Addr(), ContextTimeoutEnabled: true})
		t.Cleanup(func() { cl.Close() })
		out[i] = cl
	}
	return out
}

// aliasClient reaches the server at addr under another name, as a DNS
// alias or a proxy would.
func aliasClient(t *testing.T, addr string) *redis.Client {
	var d net.Dialer
	cl := redis.NewClient(&redis.Options{
		Addr: "alias.invalid:6379",
		Dialer: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return d.DialContext(ctx, network, addr)
		},
	})
	t.Cleanup(func() { cl.Close() })
	return cl
}
