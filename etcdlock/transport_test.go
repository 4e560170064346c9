package etcdlock_test

import (
	"context"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/distlock/distlock"
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

// behindProxy starts one member (or uses DISTLOCK_TEST_ETCD's first) and a
// faultProxy in front of it, and returns them with a client that reaches
// the member directly.
func behindProxy(t *testing.T) (*etcdtest.Cluster, *clientv3.Client, *faultProxy) {
	t.Helper()
	c := etcdtest.Start(t)
	return c, c.Client(t), startProxy(t, c.Endpoints()[0])
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

// TestTryLockReplyLost: the server runs a TryLock's Txn but its reply is
// dropped with the connection. The driver's retry finds its own key at the
// head of the queue and adopts it: the lock returned is held (it stays
// held past two renewal intervals, its fence is the key's create revision)
// and Unlock frees the key.
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
}
