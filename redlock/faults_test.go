package redlock_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/distlock/distlock"
	"github.com/distlock/distlock/internal/rediswire"
	"github.com/distlock/distlock/redlock"
)

// faultTTL is the TTL of the fault tests: long enough that a loaded machine
// never lets a lock expire by accident, and a per-node limit of TTL/50 =
// 60ms.
const faultTTL = 3 * time.Second

func openClient(t *testing.T, c *cluster) *distlock.Client {
	t.Helper()
	client, err := distlock.Open(t.Context(), c.url(), distlock.WithTTL(faultTTL))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	return client
}

// TestTwoOfFiveDown: a minority of nodes down does not stop anything, and
// fences keep growing though the nodes that issued the largest are gone.
func TestTwoOfFiveDown(t *testing.T) {
	ctx := t.Context()
	c := startCluster(t, 5)
	client := openClient(t, c)

	// Skew the nodes' records as independent servers have them (each makes
	// its own fences), so that the two about to stop hold the largest.
	names := rediswire.NamesFor("", "k")
	for i, v := range []string{"9000000000000000", "8000000000000000", "5", "6", "7"} {
		if err := c.admin[i].Set(ctx, names.Record, v+" earlier-token earlier owner", 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	l1, err := client.TryLock(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	if l1.Fence() != 9000000000000001 {
		t.Errorf("fence %d, want the largest node's 9000000000000001", l1.Fence())
	}
	if err := l1.Unlock(ctx); err != nil {
		t.Fatal(err)
	}

	c.servers[0].Stop()
	c.servers[1].Stop()

	lockCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	l2, err := client.Lock(lockCtx, "k")
	if err != nil {
		t.Fatalf("Lock with 3 of 5 nodes up: %v", err)
	}
	if l2.Fence() <= l1.Fence() {
		t.Errorf("fence %d after the two nodes with the largest counters stopped, want above the previous holder's %d", l2.Fence(), l1.Fence())
	}
	if n := c.holders(ctx, "", "k"); n != 3 {
		t.Errorf("the lock is held on %d nodes, want the 3 that are up", n)
	}
	if _, err := client.TryLock(ctx, "k"); !errors.Is(err, distlock.ErrLocked) {
		t.Errorf("TryLock of the held key with 3 of 5 nodes up: %v, want ErrLocked", err)
	}
	if err := l2.Refresh(ctx); err != nil {
		t.Errorf("Refresh with 3 of 5 nodes up: %v", err)
	}
	st, err := client.Status(ctx, "k")
	if err != nil || !st.Held || st.Fence != l2.Fence() {
		t.Errorf("Status = %+v, %v; want held with fence %d", st, err, l2.Fence())
	}
	if err := l2.Unlock(ctx); err != nil {
		t.Errorf("Unlock with 3 of 5 nodes up: %v", err)
	}
	if n := c.holders(ctx, "", "k"); n != 0 {
		t.Errorf("the lock is still on %d nodes after Unlock", n)
	}
}

// TestThreeOfFiveDown: with a majority down no lock can be had; Lock says so
// by its ctx's end (the store unavailable), and leaves nothing on the nodes
// that are up.
func TestThreeOfFiveDown(t *testing.T) {
	ctx := t.Context()
	c := startCluster(t, 5)
	client := openClient(t, c)
	// Warm the connections, so the stopped nodes' pools hold connections
	// the stop then breaks, as in production.
	if l, err := client.TryLock(ctx, "warm"); err != nil {
		t.Fatal(err)
	} else {
		l.Unlock(ctx)
	}
	for _, s := range c.servers[:3] {
		s.Stop()
	}

	const wait = time.Second
	lockCtx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	start := time.Now()
	l, err := client.Lock(lockCtx, "k")
	took := time.Since(start)
	if err == nil {
		l.Unlock(ctx)
		t.Fatal("Lock succeeded with 3 of 5 nodes down")
	}
	t.Logf("Lock with 3 of 5 nodes down, after %v: %v", took.Round(time.Millisecond), err)
	if !errors.Is(err, distlock.ErrUnavailable) {
		t.Errorf("Lock with 3 of 5 nodes down: %v; want an error wrapping ErrUnavailable", err)
	}
	if took > wait+time.Second {
		t.Errorf("Lock took %v to fail, with a %v ctx", took, wait)
	}
	if _, err := client.TryLock(ctx, "k"); !errors.Is(err, distlock.ErrUnavailable) {
		t.Errorf("TryLock with 3 of 5 nodes down: %v; want an error wrapping ErrUnavailable", err)
	}
	if _, err := client.Status(ctx, "k"); err == nil {
		t.Errorf("Status with 3 of 5 nodes down answered; want an error: too few nodes to tell")
	}
	if n := c.holders(ctx, "", "k"); n != 0 {
		t.Errorf("the key is held on %d of the live nodes after the failed Lock", n)
	}
}

// TestOneNodePaused: a node that stops answering (SIGSTOP: its connections
// stay open) costs each request at most the per-node limit; acquire,
// renewal, status and release go on with the others. When it resumes, it
// runs the acquire that queued up for it: a straggler's grant, whose own
// fence must not pass for the holder's.
func TestOneNodePaused(t *testing.T) {
	ctx := t.Context()
	c := startCluster(t, 5)
	client := openClient(t, c)
	if l, err := client.TryLock(ctx, "warm"); err != nil {
		t.Fatal(err)
	} else {
		l.Unlock(ctx)
	}
	paused := c.servers[2]
	paused.Pause()
	t.Cleanup(paused.Resume)

	start := time.Now()
	l, err := client.TryLock(ctx, "k")
	took := time.Since(start)
	if err != nil {
		t.Fatalf("TryLock with one of 5 nodes paused: %v", err)
	}
	t.Logf("TryLock with one node paused took %v (per-node limit %v)", took.Round(time.Millisecond), faultTTL/50)
	if took > faultTTL/3 {
		t.Errorf("TryLock took %v with one node paused: it waited for the paused node beyond its limit", took)
	}
	if err := l.Refresh(ctx); err != nil {
		t.Errorf("Refresh with one node paused: %v", err)
	}
	if st, err := client.Status(ctx, "k"); err != nil || !st.Held || st.Fence != l.Fence() {
		t.Errorf("Status with one node paused = %+v, %v; want held with fence %d", st, err, l.Fence())
	}

	paused.Resume()
	names := rediswire.NamesFor("", "k")
	landed := false
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if c.admin[2].Exists(ctx, names.Lock).Val() == 1 {
			landed = true
			break
		}
	}
	if landed {
		st, err := client.Status(ctx, "k")
		if err != nil || !st.Held || st.Fence != l.Fence() {
			t.Errorf("Status after the straggler's grant landed = %+v, %v; want held with the holder's fence %d", st, err, l.Fence())
		}
	} else {
		t.Log("the paused node's acquire never landed; nothing to check about stragglers")
	}
	if err := l.Unlock(ctx); err != nil {
		t.Errorf("Unlock: %v", err)
	}
	if n := c.holders(ctx, "", "k"); n != 0 {
		t.Errorf("the key is held on %d nodes after Unlock", n)
	}
	l2, err := client.TryLock(ctx, "k")
	if err != nil {
		t.Fatalf("TryLock after Resume: %v", err)
	}
	if l2.Fence() <= l.Fence() {
		t.Errorf("fence %d after Resume, want above %d", l2.Fence(), l.Fence())
	}
	l2.Unlock(ctx)

	// Paused again, Unlock goes through too, without waiting for the
	// paused node: a majority released the key.
	paused.Pause()
	l3, err := client.TryLock(ctx, "k")
	if err != nil {
		t.Fatalf("TryLock with one node paused again: %v", err)
	}
	start = time.Now()
	if err := l3.Unlock(ctx); err != nil {
		t.Errorf("Unlock with one node paused: %v", err)
	}
	if took := time.Since(start); took >= 200*time.Millisecond {
		t.Errorf("Unlock with one node paused took %v: it waited for the paused node", took)
	}
	if n := c.holders(ctx, "", "k"); n != 0 {
		t.Errorf("the key is held on %d live nodes after Unlock", n)
	}
	paused.Resume()
}

// TestFailedAcquireReleases: when only a minority grants (the majority is
// held by another token), the nodes that granted are given the key back.
func TestFailedAcquireReleases(t *testing.T) {
	ctx := t.Context()
	c := startCluster(t, 5)
	client := openClient(t, c)
	names := rediswire.NamesFor("", "k")
	for _, a := range c.admin[:3] {
		if err := a.Set(ctx, names.Lock, "someone-else", faultTTL).Err(); err != nil {
			t.Fatal(err)
		}
	}
	_, err := client.TryLock(ctx, "k")
	if !errors.Is(err, distlock.ErrLocked) {
		t.Fatalf("TryLock with 3 of 5 nodes held by another token: %v, want ErrLocked", err)
	}
	for i, a := range c.admin[3:] {
		if v, _ := a.Get(ctx, names.Lock).Result(); v != "" {
			t.Errorf("node %d still holds %q after the failed acquire", i+3, v)
		}
	}
	if st, ok := distlock.HolderOf(err); !ok || st.TTL <= 0 || st.TTL > faultTTL {
		t.Errorf("HolderOf = %+v, %v; want the holder's remaining TTL", st, ok)
	}
}

// TestDuplicateServer: two addresses that reach one server are refused when
// the driver is made, by the server's run_id.
func TestDuplicateServer(t *testing.T) {
	c := startCluster(t, 3)
	clients := clientsFor(t, c)
	clients[2] = aliasClient(t, c.servers[0].Addr())
	_, err := redlock.NewDriver(t.Context(), clients, nil)
	if !errors.Is(err, distlock.ErrInvalid) {
		t.Fatalf("NewDriver with one server twice under two names: %v, want ErrInvalid", err)
	}
	t.Log(err)

	clients = clientsFor(t, c)
	clients[2] = clients[0]
	if _, err := redlock.NewDriver(t.Context(), clients, nil); !errors.Is(err, distlock.ErrInvalid) {
		t.Fatalf("NewDriver with one client twice: %v, want ErrInvalid", err)
	}
}

// TestNoMajorityInTime: with 2 of 3 nodes paused, nobody holds the key and
// no majority can answer. TryLock says the store is unavailable, not that the
// key is locked; Lock keeps trying until its context ends; once the nodes
// are back, the key can be taken.
func TestNoMajorityInTime(t *testing.T) {
	ctx := t.Context()
	c := startCluster(t, 3)
	client := openClient(t, c)
	if l, err := client.TryLock(ctx, "warm"); err != nil {
		t.Fatal(err)
	} else {
		l.Unlock(ctx)
	}
	for _, s := range c.servers[1:] {
		s.Pause()
		t.Cleanup(s.Resume)
	}
	_, err := client.TryLock(ctx, "k")
	if !errors.Is(err, distlock.ErrUnavailable) || errors.Is(err, distlock.ErrLocked) {
		t.Errorf("TryLock with 2 of 3 nodes paused = %v; want ErrUnavailable, not ErrLocked", err)
	}
	wctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	_, err = client.Lock(wctx, "k")
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Lock with 2 of 3 nodes paused = %v; want it to wait until its context ends", err)
	}
	for _, s := range c.servers[1:] {
		s.Resume()
	}
	// The paused nodes now run what was queued for them: each grant is
	// followed by its release, or expires with its TTL.
	lctx, cancel := context.WithTimeout(ctx, 2*faultTTL)
	defer cancel()
	l, err := client.Lock(lctx, "k")
	if err != nil {
		t.Fatalf("Lock after the nodes came back: %v", err)
	}
	l.Unlock(ctx)
}
