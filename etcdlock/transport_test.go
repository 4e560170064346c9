package etcdlock_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/distlock/distlock"
	"github.com/distlock/distlock/driver"
	"github.com/distlock/distlock/etcdlock"
	"github.com/distlock/distlock/internal/etcdtest"
)

// The tests in this file put their faults in the transport: a faultProxy
// between the driver's etcd client and a real member.

// waitFor polls cond every 20ms until it holds or within passes.
func waitFor(within time.Duration, cond func() bool) bool {
	for deadline := time.Now().Add(within); ; {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// queueKeys returns the keys of a lock's queue.
func queueKeys(t *testing.T, admin *clientv3.Client, name string) []*mvccpb.KeyValue {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	resp, err := admin.Get(ctx, name+"/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	return resp.Kvs
}

// waitHeldBack waits until the proxy holds back something sent to the
// server after a call began, and a little longer, so that the call's
// request is among it.
func waitHeldBack(t *testing.T, p *faultProxy) {
	t.Helper()
	if !waitFor(5*time.Second, func() bool { return p.Held(toServer) > 0 }) {
		t.Fatal("nothing reached the proxy: the call sent no request")
	}
	time.Sleep(100 * time.Millisecond)
}

// behindProxy starts one member (or uses DISTLOCK_TEST_ETCD's first) and a
// faultProxy in front of it, and returns them with a client that reaches
// the member directly.
func behindProxy(t *testing.T) (*etcdtest.Cluster, *clientv3.Client, *faultProxy) {
	t.Helper()
	c := etcdtest.Start(t)
	return c, c.Client(t), startProxy(t, c.Endpoints()[0])
}

// takeAgain checks that d can take and release name after a fault.
func takeAgain(t *testing.T, d driver.Driver, name string, ttl time.Duration) {
	t.Helper()
	l, err := d.Acquire(t.Context(), driver.AcquireRequest{Key: name, Token: "after-the-fault", TTL: ttl, Owner: "test"})
	if err != nil {
		t.Fatalf("the same driver cannot take the name again: %v", err)
	}
	if err := d.Release(t.Context(), l); err != nil {
		t.Errorf("Release after the fault: %v", err)
	}
}

// proxiedClient returns a Client whose etcd client reaches c only through p.
func proxiedClient(t *testing.T, c *etcdtest.Cluster, p *faultProxy, ttl time.Duration) *distlock.Client {
	t.Helper()
	cl, err := etcdlock.New(c.ClientOn(t, p.Addr()), nil, distlock.WithTTL(ttl), distlock.WithLogger(discardLogger()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	return cl
}

func newDriver(t *testing.T, cli *clientv3.Client) driver.Driver {
	t.Helper()
	d, err := etcdlock.NewDriver(cli, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// TestReleaseDuringLeaderLoss: the client's connection to the leader of
// three members breaks while a Release's delete is in flight on it, and the
// leader stops: the delete is lost and Release fails. The key must still
// go within one TTL, although the driver's lease lives on through the
// other members: another client takes the name, and so does the same
// driver.
func TestReleaseDuringLeaderLoss(t *testing.T) {
	t.Parallel()
	c := etcdtest.StartCluster(t, 3)
	ctx := t.Context()
	leader := c.Leader(t)
	p := startProxy(t, c.Member(leader).Endpoint())
	cli := c.ClientOn(t, p.Addr())
	d := newDriver(t, cli)
	const ttl = 5 * time.Second // room for an election
	const name = "fault/release-leader"
	l, err := d.Acquire(ctx, driver.AcquireRequest{Key: name, Token: "first", TTL: ttl, Owner: "test"})
	if err != nil {
		t.Fatal(err)
	}

	// Both ways held: the leader never sees the delete, and the client
	// never hears that it did not (a GOAWAY naming the last stream the
	// server saw would let gRPC send the delete again elsewhere).
	p.Stall(toServer)
	p.Stall(toClient)
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	released := make(chan error, 1)
	go func() { released <- d.Release(rctx, l) }()
	waitHeldBack(t, p)
	p.Reset()
	var others []string
	for i := range c.Size() {
		if i != leader {
			others = append(others, c.Member(i).Endpoint())
		}
	}
	cli.SetEndpoints(others...)
	c.Member(leader).Stop()
	err = <-released
	if err == nil {
		t.Fatal("Release succeeded although its delete was dropped: the fault was not injected")
	}
	if !errors.Is(err, driver.ErrUnavailable) {
		t.Errorf("Release whose delete was lost = %v, want an error wrapping ErrUnavailable", err)
	}
	t.Logf("Release during the leader's loss: %v", err)

	b := clusterClient(t, c, ttl)
	var got *distlock.Lock
	if !waitFor(ttl+time.Second, func() bool {
		got, err = b.TryLock(ctx, name)
		return err == nil
	}) {
		dumpQueue(t, c, name+"/")
		t.Fatalf("another client cannot take the name one TTL after the failed Release: %v", err)
	}
	if got.Fence() <= l.Fence {
		t.Errorf("fence %d after %d", got.Fence(), l.Fence)
	}
	if err := got.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	takeAgain(t, d, name, ttl)
}

// TestReleaseStalled: a Release whose ctx ends while its delete is held
// back on a stalled connection, which is then dropped. The driver's lease
// stays alive once the client reconnects, yet the key goes as soon as the
// store answers again, long before the driver closes.
func TestReleaseStalled(t *testing.T) {
	t.Parallel()
	c, admin, p := behindProxy(t)
	ctx := t.Context()
	d := newDriver(t, c.ClientOn(t, p.Addr()))
	const ttl = 5 * time.Second
	const name = "fault/release-stalled"
	l, err := d.Acquire(ctx, driver.AcquireRequest{Key: name, Token: "first", TTL: ttl, Owner: "test"})
	if err != nil {
		t.Fatal(err)
	}
	p.Stall(toServer)
	rctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	err = d.Release(rctx, l)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, driver.ErrUnavailable) {
		t.Errorf("Release on a stalled connection = %v, want an error wrapping ErrUnavailable and context.DeadlineExceeded", err)
	}
	p.Reset() // what was held back, the delete with it, is dropped
	if !waitFor(ttl, func() bool { return len(queueKeys(t, admin, name)) == 0 }) {
		dumpQueue(t, c, name+"/")
		t.Fatalf("the key of the failed Release is still there %v after the store answers again", ttl)
	}
	takeAgain(t, d, name, ttl)
}

// TestTryLockReplyLost: the server runs a TryLock's Txn but its reply is
// dropped with the connection. The driver's retry finds its own key at the
// head of the queue and adopts it: the lock returned is held (it stays
// held past two renewal intervals, its fence is the key's create revision)
// and Unlock frees the key, and the lease, retired by the lost reply, is
// revoked.
func TestTryLockReplyLost(t *testing.T) {
	t.Parallel()
	c, admin, p := behindProxy(t)
	ctx := t.Context()
	const ttl = 3 * time.Second
	cl := proxiedClient(t, c, p, ttl)
	warm, err := cl.TryLock(ctx, "fault/reply-lost-warm") // the lease exists: TryLock is one Txn
	if err != nil {
		t.Fatal(err)
	}
	warm.Unlock(ctx)

	const name = "fault/reply-lost"
	p.Stall(toClient)
	type result struct {
		l   *distlock.Lock
		err error
	}
	res := make(chan result, 1)
	go func() {
		l, err := cl.TryLock(ctx, name)
		res <- result{l, err}
	}()
	var kvs []*mvccpb.KeyValue
	if !waitFor(5*time.Second, func() bool { kvs = queueKeys(t, admin, name); return len(kvs) > 0 }) {
		t.Fatal("the TryLock's Txn never reached the server")
	}
	p.Reset() // its reply is dropped
	var r result
	select {
	case r = <-res:
	case <-time.After(10 * time.Second):
		t.Fatal("TryLock still running 10s after its reply was lost")
	}
	if r.err != nil {
		t.Fatalf("TryLock whose reply was lost = %v, want the lock its Txn took", r.err)
	}
	l := r.l
	if l.Fence() != uint64(kvs[0].CreateRevision) {
		t.Errorf("fence %d, want the key's create revision %d", l.Fence(), kvs[0].CreateRevision)
	}
	select {
	case <-l.Done():
		t.Fatalf("the adopted lock was lost: %v", l.Err())
	case <-time.After(2*ttl/3 + ttl/6): // two renewal intervals and a half
	}
	if err := l.Unlock(ctx); err != nil {
		t.Errorf("Unlock of the adopted lock: %v", err)
	}
	if kvs := queueKeys(t, admin, name); len(kvs) != 0 {
		t.Errorf("%d keys left after Unlock", len(kvs))
	}
	// The lost reply retired the lease: with its last lock gone it is
	// revoked, and the Client's next lock goes on a new one.
	old := clientv3.LeaseID(kvs[0].Lease)
	if !waitFor(ttl, func() bool {
		resp, err := admin.TimeToLive(ctx, old)
		return err == nil && resp.TTL == -1
	}) {
		t.Errorf("the lease of the lost reply, %x, is still alive %v after its last lock went", int64(old), ttl)
	}
	next, err := cl.TryLock(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	if kvs := queueKeys(t, admin, name); len(kvs) != 1 {
		t.Errorf("%d keys after the next TryLock, want 1", len(kvs))
	} else if clientv3.LeaseID(kvs[0].Lease) == old {
		t.Errorf("the next lock's key is on the retired lease %x, want a new one", int64(old))
	}
	next.Unlock(ctx)
}

// TestLateLanding: a TryLock gives up while its Txn is held back on a
// stalled connection; the client reconnects and goes on, its clean-up of
// the failed TryLock done; only then does the held-back Txn reach the
// server and put the key, bound to the Client's lease, which another held
// lock keeps alive. The key must not stay: it is deleted within a
// keep-alive interval (a third of the TTL), while the locks on the old
// lease and on the new one stay held.
func TestLateLanding(t *testing.T) {
	t.Parallel()
	c, admin, p := behindProxy(t)
	ctx := t.Context()
	const ttl = 6 * time.Second
	cl := proxiedClient(t, c, p, ttl)
	a, err := cl.TryLock(ctx, "fault/late-a") // keeps the lease alive
	if err != nil {
		t.Fatal(err)
	}
	oldLease := queueKeys(t, admin, "fault/late-a")[0].Lease

	const name = "fault/late"
	p.Stall(toServer)
	tctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	failed := make(chan error, 1)
	go func() {
		l, err := cl.TryLock(tctx, name)
		if err == nil {
			l.Unlock(ctx)
		}
		failed <- err
	}()
	waitHeldBack(t, p)
	p.Freeze(toServer) // keep the Txn, drop what follows (its cancellation)
	if err := <-failed; err == nil {
		t.Fatal("TryLock succeeded through a stalled connection")
	} else if !errors.Is(err, distlock.ErrUnavailable) {
		t.Errorf("TryLock through a stalled connection = %v, want ErrUnavailable", err)
	}
	p.CutClients()
	var b *distlock.Lock
	if !waitFor(5*time.Second, func() bool {
		b, err = cl.TryLock(ctx, "fault/late-b")
		return err == nil
	}) {
		t.Fatalf("the Client cannot lock after reconnecting: %v", err)
	}
	time.Sleep(3 * time.Second) // any clean-up of the failed TryLock is over

	resp, err := admin.Get(ctx, "fault/late-probe")
	if err != nil {
		t.Fatal(err)
	}
	wctx, wcancel := context.WithCancel(ctx)
	defer wcancel()
	events := admin.Watch(wctx, name+"/", clientv3.WithPrefix(), clientv3.WithRev(resp.Header.Revision+1))
	p.Deliver()
	landed := time.Now()
	var key string
	for key == "" {
		select {
		case wr := <-events:
			for _, ev := range wr.Events {
				if ev.Type == mvccpb.PUT && ev.Kv.Lease == oldLease {
					key = string(ev.Kv.Key)
				}
			}
		case <-time.After(5 * time.Second):
			t.Fatal("the held-back Txn did not land: the fault was not injected")
		}
	}
	t.Logf("late landing: %s on lease %x", key, oldLease)
	gone := false
	for !gone {
		select {
		case wr := <-events:
			for _, ev := range wr.Events {
				gone = gone || (ev.Type == mvccpb.DELETE && string(ev.Kv.Key) == key)
			}
		case <-time.After(ttl):
			t.Fatalf("the key that landed late, bound to the live lease, is still there %v later", ttl)
		}
	}
	t.Logf("removed %v after it landed", time.Since(landed).Round(time.Millisecond))
	select {
	case <-a.Done():
		t.Errorf("the lock on the old lease was lost: %v", a.Err())
	case <-b.Done():
		t.Errorf("the lock on the new lease was lost: %v", b.Err())
	case <-time.After(2 * ttl / 3):
	}
	other := newClient(t, c)
	if l, err := other.TryLock(ctx, name); err != nil {
		t.Errorf("another client cannot take the name: %v", err)
	} else {
		l.Unlock(ctx)
	}
	for _, l := range []*distlock.Lock{a, b} {
		if err := l.Unlock(ctx); err != nil {
			t.Errorf("Unlock(%s): %v", l.Key(), err)
		}
	}
}
