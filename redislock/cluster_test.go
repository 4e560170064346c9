package redislock_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/distlock/distlock/driver"
	"github.com/distlock/distlock/drivertest"
	"github.com/distlock/distlock/internal/testserver"
	"github.com/distlock/distlock/redislock"
)

// startCluster starts three private redis-servers in cluster mode, gives
// each a third of the 16384 slots, joins them and waits until every node
// says the cluster is ok. It returns their addresses and a client of each.
func startCluster(t *testing.T) ([]string, []*redis.Client) {
	t.Helper()
	ctx := t.Context()
	const n = 3
	var addrs []string
	var nodes []*redis.Client
	for range n {
		srv := testserver.StartRedis(t, testserver.Private(),
			testserver.Args("--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "5000"))
		c := redis.NewClient(&redis.Options{Addr: srv.Addr()})
		t.Cleanup(func() { c.Close() })
		addrs = append(addrs, srv.Addr())
		nodes = append(nodes, c)
	}
	for i, c := range nodes {
		lo, hi := i*16384/n, (i+1)*16384/n-1
		if err := c.Do(ctx, "CLUSTER", "ADDSLOTSRANGE", lo, hi).Err(); err != nil {
			t.Fatalf("CLUSTER ADDSLOTSRANGE on %s: %v", addrs[i], err)
		}
	}
	for _, a := range addrs[1:] {
		host, port, _ := strings.Cut(a, ":")
		if err := nodes[0].ClusterMeet(ctx, host, port).Err(); err != nil {
			t.Fatalf("CLUSTER MEET %s: %v", a, err)
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for i := 0; i < n; {
		info, err := nodes[i].ClusterInfo(ctx).Result()
		if err == nil && strings.Contains(info, "cluster_state:ok") && strings.Contains(info, fmt.Sprintf("cluster_known_nodes:%d", n)) {
			i++
			continue
		}
		if time.Now().After(deadline) {
			t.Fatalf("node %s: cluster not ok after 30s: %v\n%s", addrs[i], err, info)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return addrs, nodes
}

// clusterHarness runs the suite through New with a *redis.ClusterClient,
// one per driver (as separate processes), over a three-node cluster.
type clusterHarness struct {
	addrs []string
	admin *redis.ClusterClient
}

func (h *clusterHarness) NewDriver(ctx context.Context, t *testing.T) (driver.Driver, error) {
	c := redis.NewClusterClient(&redis.ClusterOptions{Addrs: h.addrs})
	t.Cleanup(func() { c.Close() })
	return redislock.NewDriver(c, nil)
}

func (h *clusterHarness) Evict(ctx context.Context, t *testing.T, key string) error {
	return h.admin.Del(ctx, key).Err()
}

// TestConformanceCluster: on a real Redis Cluster every script touches keys
// of one slot (the lock key and its fence, metadata, queue and waiters,
// whose names carry a hash tag chosen to match the lock key's slot), so no
// call fails with CROSSSLOT, and the suite passes as on one server.
func TestConformanceCluster(t *testing.T) {
	addrs, nodes := startCluster(t)
	admin := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs})
	t.Cleanup(func() { admin.Close() })
	drivertest.RunConformanceTests(t, &clusterHarness{addrs: addrs, admin: admin})

	// The suite's keys spread over the slots, so every node ran scripts.
	ctx := t.Context()
	for i, c := range nodes {
		stats, err := c.Info(ctx, "commandstats").Result()
		if err != nil || !containsEvalsha(stats) {
			t.Errorf("node %s ran no EVALSHA during the suite (%v)", addrs[i], err)
		}
	}
	// Lock names with braces of their own land by their tag.
	cl, err := redislock.New(redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs}), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for _, key := range []string{"{user42}:profile", "a{b}c", "{}x", "plain"} {
		l, err := cl.TryLock(ctx, key)
		if err != nil {
			t.Fatalf("TryLock %q on the cluster: %v", key, err)
		}
		if err := l.Unlock(ctx); err != nil {
			t.Fatalf("Unlock %q on the cluster: %v", key, err)
		}
	}
}

// containsEvalsha reports whether INFO commandstats shows EVALSHA calls.
func containsEvalsha(commandstats string) bool {
	return strings.Contains(commandstats, "cmdstat_evalsha:calls=")
}
