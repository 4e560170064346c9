package etcdlock_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/distlock/distlock"
	"github.com/distlock/distlock/driver"
	"github.com/distlock/distlock/etcdlock"
	"github.com/distlock/distlock/internal/etcdtest"
)

// newClient returns a distlock Client over a client of its own on c.
func newClient(t *testing.T, c *etcdtest.Cluster, opts ...distlock.Option) *distlock.Client {
	t.Helper()
	cl, err := etcdlock.New(c.Client(t), nil, append([]distlock.Option{distlock.WithTTL(etcdlock.MinTTL)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	return cl
}

// newSession returns a concurrency session over a client of its own.
func newSession(t *testing.T, c *etcdtest.Cluster) *concurrency.Session {
	t.Helper()
	s, err := concurrency.NewSession(c.Client(t), concurrency.WithTTL(2))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func createRevision(t *testing.T, cli *clientv3.Client, key string) int64 {
	t.Helper()
	resp, err := cli.Get(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Kvs) != 1 {
		t.Fatalf("key %q: %d keys", key, len(resp.Kvs))
	}
	return resp.Kvs[0].CreateRevision
}

// TestInterop: distlock and etcd's concurrency.Mutex (what `etcdctl lock`
// runs) exclude each other on one name, in both directions, and distlock's
// fence is its key's create revision.
func TestInterop(t *testing.T) {
	t.Parallel()
	c := etcdtest.Start(t)
	admin := c.Client(t)
	ctx := t.Context()

	t.Run("DistlockHoldsMutexWaits", func(t *testing.T) {
		dl := newClient(t, c)
		l, err := dl.TryLock(ctx, "interop/a")
		if err != nil {
			t.Fatal(err)
		}
		key, err := holderKey(ctx, admin, "interop/a/")
		if err != nil {
			t.Fatal(err)
		}
		if rev := createRevision(t, admin, key); uint64(rev) != l.Fence() {
			t.Errorf("fence %d, want the holder key's create revision %d", l.Fence(), rev)
		}
		m := concurrency.NewMutex(newSession(t, c), "interop/a")
		if err := m.TryLock(ctx); !errors.Is(err, concurrency.ErrLocked) {
			t.Fatalf("Mutex.TryLock while distlock holds the name = %v, want concurrency.ErrLocked", err)
		}
		got := make(chan error, 1)
		go func() { got <- m.Lock(ctx) }()
		select {
		case err := <-got:
			t.Fatalf("Mutex.Lock returned while distlock holds the name: %v", err)
		case <-time.After(300 * time.Millisecond):
		}
		if err := l.Unlock(ctx); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-got:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Mutex.Lock still waiting 5s after distlock released")
		}
		if rev := createRevision(t, admin, m.Key()); uint64(rev) <= l.Fence() {
			t.Errorf("the Mutex's key revision %d is not above distlock's fence %d", rev, l.Fence())
		}
		if _, err := dl.TryLock(ctx, "interop/a"); !errors.Is(err, distlock.ErrLocked) {
			t.Errorf("TryLock while the Mutex holds the name = %v, want ErrLocked", err)
		}
		if err := m.Unlock(ctx); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("MutexHoldsDistlockWaits", func(t *testing.T) {
		s := newSession(t, c)
		m := concurrency.NewMutex(s, "interop/b")
		if err := m.Lock(ctx); err != nil {
			t.Fatal(err)
		}
		mrev := createRevision(t, admin, m.Key())
		dl := newClient(t, c)
		_, err := dl.TryLock(ctx, "interop/b")
		if !errors.Is(err, distlock.ErrLocked) {
			t.Fatalf("TryLock while a Mutex holds the name = %v, want ErrLocked", err)
		}
		if st, ok := distlock.HolderOf(err); !ok || st.Fence != uint64(mrev) || !strings.Contains(st.Owner, fmt.Sprintf("%x", int64(s.Lease()))) {
			t.Errorf("HolderOf = %+v, %v; want the Mutex's create revision %d and its lease %x", st, ok, mrev, int64(s.Lease()))
		}
		if st, err := dl.Status(ctx, "interop/b"); err != nil || !st.Held || st.Fence != uint64(mrev) || st.TTL <= 0 {
			t.Errorf("Status = %+v, %v; want held with fence %d and a TTL", st, err, mrev)
		}
		got := make(chan *distlock.Lock, 1)
		go func() {
			l, err := dl.Lock(ctx, "interop/b")
			if err != nil {
				t.Error(err)
			}
			got <- l
		}()
		select {
		case <-got:
			t.Fatal("Lock returned while a Mutex holds the name")
		case <-time.After(300 * time.Millisecond):
		}
		if err := m.Unlock(ctx); err != nil {
			t.Fatal(err)
		}
		var l *distlock.Lock
		select {
		case l = <-got:
		case <-time.After(5 * time.Second):
			t.Fatal("Lock still waiting 5s after the Mutex released")
		}
		if l == nil {
			return
		}
		key, _ := holderKey(ctx, admin, "interop/b/")
		if rev := createRevision(t, admin, key); uint64(rev) != l.Fence() || l.Fence() <= uint64(mrev) {
			t.Errorf("fence %d, want the key's create revision %d, above the Mutex's %d", l.Fence(), rev, mrev)
		}
		if err := l.Unlock(ctx); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("NestedNamesDoNotInterfere", func(t *testing.T) {
		a, b := newClient(t, c), newClient(t, c)
		outer, err := a.TryLock(ctx, "interop/n")
		if err != nil {
			t.Fatal(err)
		}
		inner, err := b.TryLock(ctx, "interop/n/x")
		if err != nil {
			t.Fatalf("TryLock(interop/n/x) while interop/n is held: %v", err)
		}
		outer.Unlock(ctx)
		// Now the outer name's prefix holds only the inner lock's key.
		outer, err = a.TryLock(ctx, "interop/n")
		if err != nil {
			t.Fatalf("TryLock(interop/n) while only interop/n/x is held: %v", err)
		}
		if _, err := b.TryLock(ctx, "interop/n"); !errors.Is(err, distlock.ErrLocked) {
			t.Errorf("second TryLock(interop/n) = %v, want ErrLocked", err)
		}
		waited, err := b.Lock(ctx, "interop/n/x/y")
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range []*distlock.Lock{outer, inner, waited} {
			if err := l.Unlock(ctx); err != nil {
				t.Error(err)
			}
		}
	})

	t.Run("MixedContenders", func(t *testing.T) {
		const rounds = 15
		var inside, overlaps atomic.Int32
		var mu sync.Mutex
		var fences []int64
		critical := func(rev int64) {
			if inside.Add(1) != 1 {
				overlaps.Add(1)
			}
			mu.Lock()
			fences = append(fences, rev)
			mu.Unlock()
			time.Sleep(time.Millisecond)
			inside.Add(-1)
		}
		var wg sync.WaitGroup
		for range 3 {
			dl := newClient(t, c)
			wg.Go(func() {
				for range rounds {
					l, err := dl.Lock(ctx, "interop/mixed")
					if err != nil {
						t.Error(err)
						return
					}
					critical(int64(l.Fence()))
					if err := l.Unlock(ctx); err != nil {
						t.Error(err)
					}
				}
			})
		}
		for range 2 {
			m := concurrency.NewMutex(newSession(t, c), "interop/mixed")
			wg.Go(func() {
				for range rounds {
					if err := m.Lock(ctx); err != nil {
						t.Error(err)
						return
					}
					critical(m.Header().Revision) // not a create revision; only order is checked loosely
					if err := m.Unlock(ctx); err != nil {
						t.Error(err)
					}
				}
			})
		}
		wg.Wait()
		if n := overlaps.Load(); n != 0 {
			t.Errorf("%d critical sections overlapped", n)
		}
		if len(fences) != 5*rounds {
			t.Errorf("%d critical sections, want %d", len(fences), 5*rounds)
		}
	})
}

// TestLeaseLostWhileWaiting: a waiter whose lease is revoked leaves the
// queue at once and, since Lock waits until its ctx ends, joins it again on
// a new lease, behind the holder; it gets the lock when the holder lets go.
func TestLeaseLostWhileWaiting(t *testing.T) {
	t.Parallel()
	c := etcdtest.Start(t)
	admin := c.Client(t)
	ctx := t.Context()
	holder, waiter := newClient(t, c), newClient(t, c)
	l, err := holder.TryLock(ctx, "lost/k")
	if err != nil {
		t.Fatal(err)
	}
	type result struct {
		fence uint64
		err   error
	}
	res := make(chan result, 1)
	go func() {
		l, err := waiter.Lock(ctx, "lost/k")
		if err != nil {
			res <- result{err: err}
			return
		}
		res <- result{fence: l.Fence()}
		l.Unlock(ctx)
	}()
	// queued returns the lease of the waiter's key, or 0 if it has none.
	queued := func() int64 {
		resp, err := admin.Get(ctx, "lost/k/", clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByCreateRevision, clientv3.SortAscend))
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.Kvs) == 2 {
			return resp.Kvs[1].Lease
		}
		return 0
	}
	waitFor := func(what string, ok func(int64) bool) int64 {
		for deadline := time.Now().Add(5 * time.Second); ; {
			if id := queued(); ok(id) {
				return id
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s within 5s", what)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	leaseID := waitFor("the waiter never joined the queue", func(id int64) bool { return id != 0 })
	if _, err := admin.Revoke(ctx, clientv3.LeaseID(leaseID)); err != nil {
		t.Fatal(err)
	}
	waitFor("the waiter did not join the queue again on a new lease", func(id int64) bool { return id != 0 && id != leaseID })
	select {
	case r := <-res:
		t.Fatalf("Lock returned while the holder still holds the key: fence %d, %v", r.fence, r.err)
	default:
	}
	l.Unlock(ctx)
	select {
	case r := <-res:
		if r.err != nil {
			t.Fatalf("Lock after its first lease was revoked: %v", r.err)
		}
		if r.fence <= l.Fence() {
			t.Errorf("fence %d after the holder's %d", r.fence, l.Fence())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the waiter did not get the lock 5s after the holder let go")
	}
}

// TestLeaseRevokedBehindOurBack: when the server no longer has a Client's
// lease (revoked by an operator, or expired during a long pause), the locks
// on it are lost, and the next TryLock and Lock, which find out when their
// write is refused, take a new lease instead of failing.
func TestLeaseRevokedBehindOurBack(t *testing.T) {
	t.Parallel()
	c := etcdtest.Start(t)
	admin := c.Client(t)
	ctx := t.Context()
	cl := newClient(t, c)
	leaseOf := func(key string) int64 {
		t.Helper()
		resp, err := admin.Get(ctx, key+"/", clientv3.WithPrefix())
		if err != nil || len(resp.Kvs) != 1 {
			t.Fatalf("reading the key of %s: %v, %d keys", key, err, len(resp.Kvs))
		}
		return resp.Kvs[0].Lease
	}
	for _, take := range []struct {
		name string
		lock func(context.Context, string, ...distlock.LockOption) (*distlock.Lock, error)
	}{{"Lock", cl.Lock}, {"TryLock", cl.TryLock}} {
		held, err := cl.TryLock(ctx, "revoked/held-"+take.name)
		if err != nil {
			t.Fatal(err)
		}
		old := leaseOf(held.Key())
		if _, err := admin.Revoke(ctx, clientv3.LeaseID(old)); err != nil {
			t.Fatal(err)
		}
		key := "revoked/" + take.name
		l, err := take.lock(ctx, key)
		if err != nil {
			t.Fatalf("%s after the lease was revoked: %v", take.name, err)
		}
		if leaseOf(key) == old {
			t.Errorf("%s: the new lock is on the revoked lease", take.name)
		}
		if err := l.Unlock(ctx); err != nil {
			t.Errorf("%s: Unlock: %v", take.name, err)
		}
		select {
		case <-held.Done():
			if !errors.Is(held.Err(), distlock.ErrLost) {
				t.Errorf("the lock on the revoked lease: Err = %v, want ErrLost", held.Err())
			}
		case <-time.After(5 * time.Second):
			t.Errorf("the lock on the revoked lease is still held 5s after %s found it gone", take.name)
		}
	}
}

// TestTTLRules: etcd leases count whole seconds, all locks of a Client
// share one lease, and a lock asking for another TTL is refused by name.
func TestTTLRules(t *testing.T) {
	t.Parallel()
	c := etcdtest.Start(t)
	ctx := t.Context()
	cl := newClient(t, c, distlock.WithTTL(2500*time.Millisecond))
	if _, err := cl.TryLock(ctx, "ttl/a", distlock.WithTTL(time.Second)); !errors.Is(err, distlock.ErrInvalid) || !strings.Contains(err.Error(), "2s") {
		t.Errorf("TTL 1s = %v, want ErrInvalid naming etcd's minimum 2s", err)
	}
	l, err := cl.TryLock(ctx, "ttl/a")
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Until(l.Deadline()); d <= 2*time.Second || d > 3*time.Second {
		t.Errorf("a 2.5s TTL rounds up to the lease's 3s: deadline in %v", d)
	}
	_, err = cl.TryLock(ctx, "ttl/b", distlock.WithTTL(5*time.Second))
	if !errors.Is(err, distlock.ErrInvalid) || !strings.Contains(err.Error(), "5s") || !strings.Contains(err.Error(), "3s") {
		t.Errorf("a lock asking another TTL = %v, want ErrInvalid naming 5s and the lease's 3s", err)
	}
	l2, err := cl.TryLock(ctx, "ttl/b", distlock.WithTTL(3*time.Second))
	if err != nil {
		t.Errorf("a lock asking the lease's TTL: %v", err)
	} else {
		l2.Unlock(ctx)
	}
	l.Unlock(ctx)

	// The server's minimum: a 1s lease is granted as 2s.
	resp, err := c.Client(t).Grant(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if resp.TTL != int64(etcdlock.MinTTL/time.Second) {
		t.Errorf("a 1s lease was granted %ds; MinTTL says %v", resp.TTL, etcdlock.MinTTL)
	}
}

// TestSameClientQueues: Locks of one Client on one name take turns, in
// order, behind its own holder.
func TestSameClientQueues(t *testing.T) {
	t.Parallel()
	c := etcdtest.Start(t)
	ctx := t.Context()
	cl := newClient(t, c)
	first, err := cl.TryLock(ctx, "same/k")
	if err != nil {
		t.Fatal(err)
	}
	const n = 3
	got := make(chan uint64, n)
	for range n {
		go func() {
			l, err := cl.Lock(ctx, "same/k")
			if err != nil {
				t.Error(err)
				got <- 0
				return
			}
			got <- l.Fence()
			l.Unlock(ctx)
		}()
	}
	time.Sleep(200 * time.Millisecond)
	if len(got) != 0 {
		t.Fatal("a Lock of the holder's own Client got the held name")
	}
	first.Unlock(ctx)
	prev := first.Fence()
	for range n {
		select {
		case f := <-got:
			if f <= prev {
				t.Errorf("fence %d after %d", f, prev)
			}
			prev = f
		case <-time.After(10 * time.Second):
			t.Fatal("a waiter of the same Client never got the lock")
		}
	}
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// TestLateReleaseKeepsNewerLock: a release repeated after the same lease
// took the name again (the same etcd key) must not delete the newer lock.
func TestLateReleaseKeepsNewerLock(t *testing.T) {
	t.Parallel()
	c := etcdtest.Start(t)
	ctx := t.Context()
	d, err := etcdlock.NewDriver(c.Client(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	req := func(token string) driver.AcquireRequest {
		return driver.AcquireRequest{Key: "late/k", Token: token, TTL: etcdlock.MinTTL, Owner: "test"}
	}
	l1, err := d.Acquire(ctx, req("first"))
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Release(ctx, l1); err != nil {
		t.Fatal(err)
	}
	l2, err := d.Acquire(ctx, req("second"))
	if err != nil {
		t.Fatal(err)
	}
	if l2.Fence <= l1.Fence {
		t.Fatalf("fence %d after %d", l2.Fence, l1.Fence)
	}
	for _, stale := range []driver.Lease{l1, {Key: l1.Key, Token: l1.Token}, {Key: l1.Key, Token: l2.Token, Fence: l1.Fence}} {
		if err := d.Release(ctx, stale); !errors.Is(err, driver.ErrNotHeld) {
			t.Errorf("late Release(%+v) = %v, want ErrNotHeld", stale, err)
		}
	}
	if h, err := d.Inspect(ctx, "late/k"); err != nil || !h.Held || h.Fence != l2.Fence {
		t.Errorf("Inspect after late releases = %+v, %v; want held with fence %d", h, err, l2.Fence)
	}

	// The same when the key went behind the lock's back (an operator's
	// delete) and the driver wrote the same key name anew: Release sends a
	// plain delete only for the lock that owns the key now.
	if _, err := c.Client(t).Delete(ctx, "late/k/", clientv3.WithPrefix()); err != nil {
		t.Fatal(err)
	}
	l3, err := d.Acquire(ctx, req("third"))
	if err != nil {
		t.Fatalf("Acquire after the key was deleted behind the holder's back: %v", err)
	}
	if err := d.Release(ctx, l2); !errors.Is(err, driver.ErrNotHeld) {
		t.Errorf("Release of the evicted lock = %v, want ErrNotHeld", err)
	}
	if h, err := d.Inspect(ctx, "late/k"); err != nil || !h.Held || h.Fence != l3.Fence {
		t.Errorf("Inspect after the evicted lock's release = %+v, %v; want held with fence %d", h, err, l3.Fence)
	}
	if err := d.Release(ctx, l3); err != nil {
		t.Error(err)
	}
	if h, err := d.Inspect(ctx, "late/k"); err != nil || h.Held {
		t.Errorf("Inspect after the last Release = %+v, %v; want free", h, err)
	}
}
