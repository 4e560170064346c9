package etcdlock_test

import (
	"context"
	"errors"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/distlock/distlock"
	"github.com/distlock/distlock/etcdlock"
	"github.com/distlock/distlock/internal/etcdtest"
)

// clusterClient returns a distlock Client whose etcd client knows every
// member of c.
func clusterClient(t *testing.T, c *etcdtest.Cluster, ttl time.Duration) *distlock.Client {
	t.Helper()
	cl, err := etcdlock.New(c.Client(t), nil, distlock.WithTTL(ttl), distlock.WithLogger(discardLogger()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	return cl
}

// TestLeaderStopped: the leader of three members stops while a lock is
// held: the lock survives, new locks work, and the member rejoins.
func TestLeaderStopped(t *testing.T) {
	t.Parallel()
	c := etcdtest.StartCluster(t, 3)
	ctx := t.Context()
	const ttl = 5 * time.Second // room for an election and a reconnect
	a, b := clusterClient(t, c, ttl), clusterClient(t, c, ttl)
	l, err := a.TryLock(ctx, "fault/leader")
	if err != nil {
		t.Fatal(err)
	}
	leader := c.Leader(t)
	c.Member(leader).Stop()
	t.Logf("stopped the leader, member %d", leader)
	c.Leader(t) // the others elect one

	waitCtx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	l2, err := b.Lock(waitCtx, "fault/leader-new")
	if err != nil {
		t.Fatalf("Lock of a free name after the leader stopped: %v", err)
	}
	select {
	case <-l.Done():
		t.Fatalf("the held lock was lost: %v", l.Err())
	case <-time.After(2 * ttl):
	}
	if _, err := b.TryLock(ctx, "fault/leader"); !errors.Is(err, distlock.ErrLocked) {
		t.Errorf("TryLock of the held name = %v, want ErrLocked", err)
	}
	c.Member(leader).Restart()
	c.Member(leader).Ready()
	if err := l.Unlock(ctx); err != nil {
		t.Errorf("Unlock of the surviving lock: %v", err)
	}
	l3, err := b.Lock(waitCtx, "fault/leader")
	if err != nil {
		t.Fatalf("Lock after the member rejoined: %v", err)
	}
	if l3.Fence() <= l.Fence() {
		t.Errorf("fence %d after %d", l3.Fence(), l.Fence())
	}
	l2.Unlock(ctx)
	l3.Unlock(ctx)
}

// TestQuorumLost: two of three members stop. A Lock fails with a clear
// error when its ctx ends; a held lock reports its loss once the lease
// cannot be kept alive; after the members return, locking resumes with a
// higher fence.
func TestQuorumLost(t *testing.T) {
	t.Parallel()
	c := etcdtest.StartCluster(t, 3)
	ctx := t.Context()
	const ttl = 2 * time.Second
	a, b := clusterClient(t, c, ttl), clusterClient(t, c, ttl)
	held, err := a.TryLock(ctx, "fault/quorum")
	if err != nil {
		t.Fatal(err)
	}
	// b has a lease already: its Lock joins the queue, not a lease grant.
	warm, err := b.TryLock(ctx, "fault/quorum-warm")
	if err != nil {
		t.Fatal(err)
	}
	warm.Unlock(ctx)
	stopped := []int{(c.Leader(t) + 1) % 3, (c.Leader(t) + 2) % 3}
	for _, i := range stopped {
		c.Member(i).Stop()
	}
	waitCtx, cancel := context.WithTimeout(ctx, 3*time.Second)
	start := time.Now()
	_, err = b.Lock(waitCtx, "fault/quorum")
	cancel()
	if err == nil {
		t.Fatal("Lock succeeded without a quorum")
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Lock without a quorum = %v, want an error wrapping context.DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 8*time.Second {
		t.Errorf("Lock with a 3s ctx returned after %v", d)
	}
	t.Logf("Lock without quorum: %v", err)
	select {
	case <-held.Done():
		if !errors.Is(held.Err(), distlock.ErrLost) {
			t.Errorf("Err = %v, want ErrLost", held.Err())
		}
	case <-time.After(ttl + 5*time.Second):
		t.Fatal("a held lock still reports held long after its lease could no longer be kept alive")
	}
	for _, i := range stopped {
		c.Member(i).Restart()
	}
	for _, i := range stopped {
		c.Member(i).Ready()
	}
	lockCtx, cancel2 := context.WithTimeout(ctx, 30*time.Second)
	defer cancel2()
	l, err := b.Lock(lockCtx, "fault/quorum")
	if err != nil {
		t.Fatalf("Lock after the members returned: %v", err)
	}
	if l.Fence() <= held.Fence() {
		t.Errorf("fence %d after the lost holder's %d", l.Fence(), held.Fence())
	}
	l.Unlock(ctx)
}

// TestKeepAliveCut: the one member a holder talks to stops: the holder
// loses its lock within its TTL, and after the member returns the next
// holder's fence is higher.
func TestKeepAliveCut(t *testing.T) {
	t.Parallel()
	c := etcdtest.StartCluster(t, 1)
	ctx := t.Context()
	const ttl = 2 * time.Second
	a := clusterClient(t, c, ttl)
	l, err := a.TryLock(ctx, "fault/cut")
	if err != nil {
		t.Fatal(err)
	}
	c.Member(0).Stop()
	stopped := time.Now()
	select {
	case <-l.Done():
		if d := time.Since(stopped); d > ttl+time.Second {
			t.Errorf("loss noticed %v after the member stopped (TTL %v)", d, ttl)
		}
		if !errors.Is(l.Err(), distlock.ErrLost) {
			t.Errorf("Err = %v, want ErrLost", l.Err())
		}
	case <-time.After(ttl + 5*time.Second):
		t.Fatal("the holder still believes it holds the lock")
	}
	c.Member(0).Restart()
	c.Member(0).Ready()
	b := clusterClient(t, c, ttl)
	lockCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	l2, err := b.Lock(lockCtx, "fault/cut")
	if err != nil {
		dumpQueue(t, c, "fault/cut/")
		t.Fatalf("Lock after the member returned: %v", err)
	}
	if l2.Fence() <= l.Fence() {
		t.Errorf("fence %d after the lost holder's %d", l2.Fence(), l.Fence())
	}
	l2.Unlock(ctx)
}

// dumpQueue logs a queue's keys and their leases' time to live.
func dumpQueue(t *testing.T, c *etcdtest.Cluster, prefix string) {
	cli := c.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := cli.Get(ctx, prefix, clientv3.WithPrefix())
	if err != nil {
		t.Logf("dump: %v", err)
		return
	}
	for _, kv := range resp.Kvs {
		ttl, err := cli.TimeToLive(ctx, clientv3.LeaseID(kv.Lease))
		t.Logf("key %s rev %d lease %x value %s: ttl %+v %v", kv.Key, kv.CreateRevision, kv.Lease, kv.Value, ttl, err)
	}
}
