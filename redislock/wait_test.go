package redislock_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/distlock/distlock"
	"github.com/distlock/distlock/internal/rediswire"
	"github.com/distlock/distlock/internal/testserver"
	"github.com/distlock/distlock/redislock"
)

func openClients(t *testing.T, addr string, n int, opts ...distlock.Option) []*distlock.Client {
	t.Helper()
	cs := make([]*distlock.Client, n)
	for i := range cs {
		c, err := redislock.Open(t.Context(), "redis://"+addr, opts...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		cs[i] = c
	}
	return cs
}

// waitQueued waits until key's queue holds n waiters.
func waitQueued(t *testing.T, admin *redis.Client, key string, n int64) {
	t.Helper()
	q := rediswire.NamesFor("", key).Queue
	deadline := time.Now().Add(10 * time.Second)
	for admin.LLen(t.Context(), q).Val() != n {
		if time.Now().After(deadline) {
			t.Fatalf("queue of %s has %d waiters, want %d", key, admin.LLen(t.Context(), q).Val(), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Waiters get the lock oldest first, one release each.
func TestWaitersFirstInFirstOut(t *testing.T) {
	srv := testserver.StartRedis(t)
	admin := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer admin.Close()
	ctx := t.Context()
	const waiters = 4
	cs := openClients(t, srv.Addr(), waiters+1, distlock.WithTTL(30*time.Second))
	key := t.Name()
	holder, err := cs[0].TryLock(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		order []int
		wg    sync.WaitGroup
	)
	for i := 1; i <= waiters; i++ {
		wg.Go(func() {
			l, err := cs[i].Lock(ctx, key)
			if err != nil {
				t.Errorf("waiter %d: %v", i, err)
				return
			}
			mu.Lock()
			order = append(order, i)
			mu.Unlock()
			l.Unlock(ctx)
		})
		waitQueued(t, admin, key, int64(i))
	}
	holder.Unlock(ctx)
	wg.Wait()
	for i, w := range order {
		if w != i+1 {
			t.Fatalf("waiters got the lock in order %v, want 1..%d", order, waiters)
		}
	}
}

// Hand-overs published while the shared subscription is down are not lost
// for good: the resubscription makes every waiter check again.
func TestWaiterSurvivesSubscriptionLoss(t *testing.T) {
	srv := testserver.StartRedis(t, testserver.Private()) // kills connections
	admin := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer admin.Close()
	ctx := t.Context()
	cs := openClients(t, srv.Addr(), 2, distlock.WithTTL(60*time.Second)) // re-checks every 20s
	key := t.Name()
	holder, err := cs[0].TryLock(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan error, 1)
	go func() {
		l, err := cs[1].Lock(ctx, key)
		if err == nil {
			l.Unlock(ctx)
		}
		got <- err
	}()
	waitQueued(t, admin, key, 1)
	if k, err := admin.ClientKillByFilter(ctx, "TYPE", "pubsub").Result(); err != nil || k < 1 {
		t.Fatalf("CLIENT KILL TYPE pubsub: %d, %v", k, err)
	}
	start := time.Now()
	holder.Unlock(ctx)
	select {
	case err := <-got:
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("waiter got the lock %v after the release", time.Since(start).Round(time.Millisecond))
	case <-time.After(10 * time.Second):
		t.Fatal("waiter still waiting 10s after the release (its re-check is 20s away)")
	}
}

// A waiter that died after queuing may be handed the lock; the lock then
// expires by its TTL and the next waiter gets it.
func TestDeadWaiterCostsOneTTL(t *testing.T) {
	srv := testserver.StartRedis(t)
	admin := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer admin.Close()
	ctx := t.Context()
	cs := openClients(t, srv.Addr(), 2, distlock.WithTTL(3*time.Second))
	key := t.Name()
	n := rediswire.NamesFor("", key)
	holder, err := cs[0].TryLock(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	// A ghost queues with a 500ms lock TTL and a 10s entry, then "dies".
	if _, err := rediswire.Enqueue(ctx, admin, n, "ghost", "", 500*time.Millisecond, 10*time.Second); err == nil {
		t.Fatal("ghost got the lock")
	}
	got := make(chan error, 1)
	go func() {
		l, err := cs[1].Lock(ctx, key)
		if err == nil {
			l.Unlock(ctx)
		}
		got <- err
	}()
	waitQueued(t, admin, key, 2)
	holder.Unlock(ctx)
	if h, _ := rediswire.Inspect(ctx, admin, n); h.Token != "ghost" {
		t.Fatalf("holder after the release: %q, want the ghost", h.Token)
	}
	select {
	case err := <-got:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the live waiter never got the lock after the ghost's expired")
	}
}

// A raw driver closed under a waiting AcquireWait ends the wait.
func TestCloseEndsWait(t *testing.T) {
	srv := testserver.StartRedis(t)
	ctx := t.Context()
	cs := openClients(t, srv.Addr(), 1, distlock.WithTTL(30*time.Second))
	key := t.Name()
	holder, err := cs[0].TryLock(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Unlock(ctx)
	c, err := redislock.Open(ctx, "redis://"+srv.Addr(), distlock.WithTTL(30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan error, 1)
	go func() {
		_, err := c.Lock(context.Background(), key)
		got <- err
	}()
	time.Sleep(200 * time.Millisecond)
	c.Close()
	select {
	case err := <-got:
		if err == nil {
			t.Fatal("Lock succeeded on a held key")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not end a waiting Lock")
	}
}

// A waiter whose ctx ends is out of the queue when Lock returns, so the
// holder's release that follows frees the key rather than hand it to a
// waiter that is gone.
func TestCancelledWaiterLeavesBeforeReturning(t *testing.T) {
	srv := testserver.StartRedis(t)
	admin := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer admin.Close()
	ctx := t.Context()
	cs := openClients(t, srv.Addr(), 3, distlock.WithTTL(30*time.Second))
	key := t.Name()
	holder, err := cs[0].TryLock(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	for round := range 5 {
		wctx, cancel := context.WithCancel(ctx)
		got := make(chan error, 1)
		go func() {
			_, err := cs[1].Lock(wctx, key)
			got <- err
		}()
		waitQueued(t, admin, key, 1)
		cancel()
		if err := <-got; err == nil {
			t.Fatalf("round %d: a cancelled Lock returned the lock", round)
		}
		n := rediswire.NamesFor("", key)
		if q, w := admin.LLen(ctx, n.Queue).Val(), admin.HLen(ctx, n.Waiters).Val(); q != 0 || w != 0 {
			t.Fatalf("round %d: %d queued and %d waiter entries left when the cancelled Lock returned", round, q, w)
		}
	}
	if err := holder.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	l, err := cs[2].TryLock(ctx, key)
	if err != nil {
		t.Fatalf("TryLock after the holder unlocked: %v; the cancelled waiters must hold nothing", err)
	}
	l.Unlock(ctx)
}
