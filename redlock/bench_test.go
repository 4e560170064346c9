package redlock_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/distlock/distlock"
	"github.com/distlock/distlock/redlock"
)

// roundTrips counts the requests a client sends: one per command, one per
// pipeline (a pipeline is written and read back in one round trip).
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

// countedClients makes one client per node of c, all counting into rt.
func countedClients(tb testing.TB, c *cluster, rt *roundTrips) []redis.UniversalClient {
	out := make([]redis.UniversalClient, len(c.servers))
	for i, s := range c.servers {
		cl := redis.NewClient(&redis.Options{Addr: s.Addr(), ContextTimeoutEnabled: true, MaxRetries: -1, DialerRetries: 1})
		cl.AddHook(rt)
		tb.Cleanup(func() { cl.Close() })
		out[i] = cl
	}
	return out
}

// countedClient is a Client on the three nodes of c whose requests are
// counted (the opening check, one INFO per node, is not).
func countedClient(tb testing.TB, c *cluster, opts ...distlock.Option) (*distlock.Client, *roundTrips) {
	var rt roundTrips
	client, err := redlock.New(context.Background(), countedClients(tb, c, &rt), nil, opts...)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { client.Close() })
	rt.n.Store(0)
	return client, &rt
}

// TestRoundTripsPerOperation pins the round trips the package documents:
// one per node for each operation, once the nodes' fence counters agree.
func TestRoundTripsPerOperation(t *testing.T) {
	ctx := t.Context()
	c := startCluster(t, 3)
	client, rt := countedClient(t, c)
	step := func(what string, want int64, f func() error) {
		t.Helper()
		before := rt.n.Load()
		if err := f(); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if got := rt.n.Load() - before; got != want {
			t.Errorf("%s: %d round trips over 3 nodes, want %d", what, got, want)
		}
	}
	// EVALSHA of a script a server has not seen yet is answered NOSCRIPT
	// and sent again (as EVAL, or after SCRIPT LOAD in a pipeline).
	first, err := client.TryLock(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	if err := first.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := client.Status(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	if err := first.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	var l *distlock.Lock
	step("TryLock", 3, func() (err error) { l, err = client.TryLock(ctx, "k"); return err })
	step("Refresh", 3, func() error { return l.Refresh(ctx) })
	step("Status", 3, func() error { _, err := client.Status(ctx, "k"); return err })
	step("Unlock", 3, func() error { return l.Unlock(ctx) })
	if l.Fence() <= first.Fence() {
		t.Errorf("fence %d, want above the first holder's %d", l.Fence(), first.Fence())
	}
	// The first lock of another key: the nodes have no counter for it, and
	// make the same fence from the floor the acquire asks for, so the fence
	// needs no spread.
	step("TryLock of a new key", 3, func() (err error) { l, err = client.TryLock(ctx, "k2"); return err })
	step("Unlock", 3, func() error { return l.Unlock(ctx) })
}

// BenchmarkLockUnlock is an uncontended TryLock and Unlock of one key on
// three nodes.
func BenchmarkLockUnlock(b *testing.B) {
	ctx := context.Background()
	c := startCluster(b, 3)
	client, rt := countedClient(b, c)
	b.ResetTimer()
	for b.Loop() {
		l, err := client.TryLock(ctx, "bench")
		if err != nil {
			b.Fatal(err)
		}
		if err := l.Unlock(ctx); err != nil {
			b.Fatal(err)
		}
	}
	reportRoundTrips(b, rt, 3)
}

// BenchmarkTryLockContended is a TryLock of a key another Client holds: the
// answer a waiter gets.
func BenchmarkTryLockContended(b *testing.B) {
	ctx := context.Background()
	c := startCluster(b, 3)
	holder, _ := countedClient(b, c)
	if _, err := holder.TryLock(ctx, "bench"); err != nil {
		b.Fatal(err)
	}
	client, rt := countedClient(b, c)
	b.ResetTimer()
	for b.Loop() {
		if _, err := client.TryLock(ctx, "bench"); !errors.Is(err, distlock.ErrLocked) {
			b.Fatal(err)
		}
	}
	reportRoundTrips(b, rt, 3)
}

// BenchmarkFloor is what BenchmarkLockUnlock is measured against: SET NX PX
// and a plain DEL on each of three nodes, the nodes in parallel. A Redlock
// cannot cost less than two round trips to every node.
func BenchmarkFloor(b *testing.B) {
	ctx := context.Background()
	c := startCluster(b, 3)
	var rt roundTrips
	clients := countedClients(b, c, &rt)
	all := func(f func(cl redis.UniversalClient) error) {
		var wg sync.WaitGroup
		for _, cl := range clients {
			wg.Go(func() {
				if err := f(cl); err != nil {
					b.Error(err)
				}
			})
		}
		wg.Wait()
	}
	b.ResetTimer()
	for b.Loop() {
		all(func(cl redis.UniversalClient) error { return cl.SetNX(ctx, "floor", "token", 10*time.Second).Err() })
		all(func(cl redis.UniversalClient) error { return cl.Del(ctx, "floor").Err() })
	}
	reportRoundTrips(b, &rt, 3)
}

func reportRoundTrips(b *testing.B, rt *roundTrips, nodes int) {
	per := float64(rt.n.Load()) / float64(b.N)
	b.ReportMetric(per, "roundtrips/op")
	b.ReportMetric(per/float64(nodes), "roundtrips/node/op")
}
